//! The `cbreak` binary: parse, run, exit. Everything else is in the library.
//!
//! It starts from C's `main`, not Rust's: `cbreak::start` says what Rust's
//! runtime start-up would do first, and which half of it cbreak keeps.
//! (Its unit-test build keeps Rust's `main`, for the test harness.)

#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    // SAFETY: argc and argv are what the C runtime passes to `main`: argc
    // pointers to NUL-terminated strings that live as long as the process.
    unsafe { cbreak::start::main(argc, argv) }
}

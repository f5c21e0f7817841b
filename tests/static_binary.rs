//! The self-contained build (`cargo static`): no ELF interpreter, and the
//! smoke path works. `.ci/run` builds it and points `CBREAK_STATIC_BIN` at
//! it; a plain `cargo test` says it was skipped.

use crate::util::Env;

/// Whether the ELF file at `path` asks for a program interpreter (a
/// PT_INTERP program header), i.e. is dynamically linked.
fn has_interpreter(bytes: &[u8]) -> bool {
    assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(bytes[4], 2, "not a 64-bit ELF file");
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| u32_at(phoff + i * phentsize) == 3 /* PT_INTERP */)
}

#[test]
fn elf_check_tells_dynamic_from_static() {
    // The test binary itself is dynamically linked.
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    assert!(has_interpreter(&me));
}

#[test]
fn static_binary_is_self_contained_and_works() {
    let Ok(bin) = std::env::var("CBREAK_STATIC_BIN") else {
        println!(
            "SKIPPED static_binary_is_self_contained_and_works: CBREAK_STATIC_BIN is not set (.ci/run sets it after `cargo static`)"
        );
        return;
    };
    let bytes = std::fs::read(&bin).unwrap_or_else(|e| panic!("{bin}: {e}"));
    assert!(!has_interpreter(&bytes), "{bin} is dynamically linked");
    let env = Env::new();
    // Without HOME, too: the state directory comes from the environment
    // and nothing asks the user database (no NSS in a static binary).
    let direct = |args: &[&str]| {
        crate::util::Run::from(
            std::process::Command::new(&bin)
                .args(args)
                .env("CBREAK_STATE_DIR", env.state())
                .env_remove("HOME")
                .output()
                .unwrap(),
        )
    };
    direct(&["run", "-n", "smoke", "-t", "1", "--", "true"])
        .success()
        .stderr_empty();
    direct(&["run", "-n", "smoke", "-t", "1", "--", "false"])
        .code(1)
        .stderr_has("opened");
    direct(&["run", "-n", "smoke", "--", "true"])
        .code(75)
        .stderr_has("skipped");
    let out = direct(&["status", "smoke", "--json"]).success();
    let s: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (
            s["state"].as_str(),
            s["calls"].as_u64(),
            s["rejected"].as_u64()
        ),
        (Some("open"), Some(2), Some(1))
    );
}

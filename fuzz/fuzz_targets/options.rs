//! The option parsers: durations, percentages, windows, code lists, backoff
//! factors and names. None may panic; what they accept must mean what it
//! says.
#![no_main]

use cbreak::value::{
    parse_codes, parse_duration, parse_factor, parse_name, parse_percent, parse_window,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_duration(s);
    if let Ok(bp) = parse_percent(s) {
        assert!(bp <= 10_000);
    }
    let _ = parse_window(s);
    if let Ok(set) = parse_codes(s) {
        // The canonical form parses back to the same set.
        let list = set.to_list();
        assert_eq!(parse_codes(&list), Ok(set), "{s:?} -> {list:?}");
    }
    if let Ok(f) = parse_factor(s) {
        assert!(f > 1000 && f <= 100_000);
    }
    if let Ok(name) = parse_name(s) {
        assert!(!name.contains('/') && !name.starts_with('.') && name.len() <= 64);
    }
});

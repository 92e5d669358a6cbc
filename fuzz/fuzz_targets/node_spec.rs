//! Node descriptions as the API will receive them: arbitrary JSON through
//! `NodeSpec::from_json` and arbitrary text through `NodeSpec::from_toml`.
//! Neither may panic; a description that is accepted reads back the same
//! from its own JSON (what the server reports of a node).
#![no_main]

use eyrie::config::NodeSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data)
        && let Ok(spec) = NodeSpec::from_json(&value, "<fuzz>")
    {
        let echoed = serde_json::to_value(&spec).expect("a node serializes");
        assert_eq!(NodeSpec::from_json(&echoed, "<fuzz>").expect("its own JSON is accepted"), spec);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = NodeSpec::from_toml(text, "<fuzz>");
    }
});

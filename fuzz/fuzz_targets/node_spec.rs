//! Node descriptions as the API will receive them: arbitrary JSON through
//! `NodeSpec::from_json` and arbitrary text through `NodeSpec::from_toml`.
//! Neither may panic; a description that is accepted reads back the same
//! from its own JSON (what the server reports of a node), and a source
//! written back into a config file (`-c FILE` follows the API) reads back
//! the same from it.
#![no_main]

use eyrie::config::{Config, NodeSpec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data)
        && let Ok(spec) = NodeSpec::from_json(&value, "<fuzz>")
    {
        let echoed = serde_json::to_value(&spec).expect("a node serializes");
        assert_eq!(NodeSpec::from_json(&echoed, "<fuzz>").expect("its own JSON is accepted"), spec);
        // A source written back into a config file reads back the same.
        if spec.listen_to.is_none() && spec.props.inputs().is_empty() {
            let config = Config {
                server: Default::default(),
                nodes: vec![spec.clone()],
            };
            let text = eyrie::capture::rtsp::with_secrets(|| toml::to_string(&config)).expect("a config writes");
            let back = Config::parse(&text, "<fuzz>").unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(back.nodes, config.nodes, "{text}");
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = NodeSpec::from_toml(text, "<fuzz>");
    }
});

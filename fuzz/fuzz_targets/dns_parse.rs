//! The agent's DNS path on arbitrary bytes: parse (whole and as a cut capture), learn
//! from the answer, classify every name it yields. Nothing here may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mxsentry::{
    detect::{Engine, Policy, ProtectEntry},
    dns::{Data, learn, parse},
};
use std::sync::OnceLock;

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        let protect = ["army.mil", "example.com", "gov.uk", "bank-of-america.com"]
            .iter()
            .map(|e| ProtectEntry {
                entry: e.to_string(),
                action: None,
            })
            .collect();
        Engine::new(&Policy {
            protect,
            ..Policy::default()
        })
        .expect("policy")
    })
}

fuzz_target!(|data: &[u8]| {
    for msg_len in [data.len(), data.len() + 100] {
        if let Ok(m) = parse(data, msg_len) {
            let l = learn(&m);
            let _ = engine().classify(&m.qname);
            for r in &m.records {
                let _ = engine().classify(&r.name);
                if let Data::Cname(t) | Data::Mx { exchange: t, .. } = &r.data {
                    let _ = engine().classify(t);
                }
            }
            let _ = l.resolved();
        }
    }
});

//! fake_notion: a local stand-in for api.notion.com used by notion_sync's tests, demo and benchmarks.
//!
//! `fake_notion [--port N] [--workspace FILE] [--port-file FILE] [--rps R] [--latency-ms N]
//! [--latency-jitter-ms N]`
//! Listens on 127.0.0.1 only. Notion routes live under `/v1`, test controls under `/admin`.

mod admin;
mod api;
mod http;
mod store;
#[cfg(test)]
mod tests;
mod write;

use std::net::TcpListener;
use std::sync::Arc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let port: u16 = arg("--port").and_then(|p| p.parse().ok()).unwrap_or(0);
    let seed = match arg("--workspace") {
        Some(path) => {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| {
                eprintln!("fake_notion: cannot read {path}: {e}");
                std::process::exit(2)
            });
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                eprintln!("fake_notion: {path} is not JSON: {e}");
                std::process::exit(2)
            })
        }
        None => serde_json::json!({}),
    };
    let store = store::Store::load(&seed).unwrap_or_else(|e| {
        eprintln!("fake_notion: bad workspace: {e}");
        std::process::exit(2)
    });
    let mut settings = api::Settings::default();
    if let Some(r) = arg("--rps").and_then(|r| r.parse().ok()) {
        settings.rps = r;
        settings.burst = r;
    }
    if let Some(ms) = arg("--latency-ms").and_then(|r| r.parse().ok()) {
        settings.latency_ms = ms;
    }
    if let Some(ms) = arg("--latency-jitter-ms").and_then(|r| r.parse().ok()) {
        settings.latency_jitter_ms = ms;
    }
    let fake = Arc::new(api::Fake::new(store, settings));
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| {
        eprintln!("fake_notion: cannot listen on 127.0.0.1:{port}: {e}");
        std::process::exit(2)
    });
    let addr = listener.local_addr().expect("addr");
    if let Some(f) = arg("--port-file") {
        std::fs::write(&f, addr.port().to_string()).expect("port file");
    }
    println!("fake_notion listening on http://{addr}");
    let handler = Arc::new(move |req| fake.handle(req));
    http::serve(listener, handler);
}

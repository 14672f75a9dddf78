//! kvmtune's Prometheus exporter: what `kvmtune exporter` serves.
//!
//! - [`metrics`]: the metric table (names, types, labels, meanings), defined once;
//! - [`model`]: one collection as plain data;
//! - [`collect`]: the collector on a live libvirt (one bulk statistics call and the /proc
//!   reads per scrape; audit and host facts every audit interval);
//! - [`encode`](mod@encode): a collection through `prometheus-client` (Prometheus text or OpenMetrics);
//! - [`scrape`]: serialised scrapes with a timeout;
//! - [`http`]: the bounded HTTP server, and [`route`] its paths.

use std::sync::Arc;

pub mod collect;
pub mod encode;
pub mod http;
pub mod metrics;
pub mod model;
pub mod scrape;

pub use collect::{Collector, Options};
pub use encode::{Format, encode};
pub use model::Collection;
pub use scrape::{Collect, Scraper};

/// The version in `kvmtune_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The default port (see docs/exporter.md).
pub const DEFAULT_PORT: u16 = 10126;

/// The default listen address: loopback only.
pub fn default_listen() -> String {
    format!("127.0.0.1:{DEFAULT_PORT}")
}

/// The name of the text file `--textfile DIR` writes.
pub const TEXTFILE: &str = "kvmtune.prom";

const INDEX: &str = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>kvmtune exporter</title></head>\n<body><h1>kvmtune exporter</h1>\n<p><a href=\"/metrics\">Metrics</a></p>\n<p><a href=\"/-/healthy\">Health</a></p>\n</body></html>\n";

/// Answer one request: `/metrics`, `/`, `/-/healthy`; 404 elsewhere, 405 for methods
/// other than GET and HEAD.
pub fn route(req: &http::Request, scrape: &dyn Fn() -> Arc<Collection>) -> http::Response {
    let known = matches!(req.path.as_str(), "/" | "/metrics" | "/-/healthy");
    if !known {
        return http::Response::text(404, "not found\n");
    }
    if req.method != "GET" && req.method != "HEAD" {
        let mut r = http::Response::text(405, "method not allowed\n");
        r.headers.push("Allow: GET, HEAD".into());
        return r;
    }
    match req.path.as_str() {
        "/metrics" => {
            let format = Format::negotiate(req.accept.as_deref());
            let c = scrape();
            http::Response {
                status: 200,
                content_type: format.content_type(),
                body: encode(&c, format).into_bytes(),
                headers: Vec::new(),
            }
        }
        "/" => http::Response {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: INDEX.as_bytes().to_vec(),
            headers: Vec::new(),
        },
        _ => http::Response::text(200, "OK"),
    }
}

/// The HTTP handler of a scraper.
pub fn handler(scraper: Arc<Scraper>) -> Arc<http::Handler> {
    Arc::new(move |req: &http::Request| route(req, &|| scraper.scrape()))
}

#[cfg(test)]
mod tests;

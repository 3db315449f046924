//! One structured logger. Every line is one JSON object: `level`, `msg`, what the line
//! belongs to (the request's `request_id`, or the `cron` of a scheduled run) and the fields
//! the caller adds. A `Logger` is made once per request (or run) and passed down, so no line
//! can forget whose it is.

use serde_json::{Map, Value};

/// How serious a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Which requests get their one access line (`REQUEST_LOG`). Lines a flow writes itself
/// (an upstream failure, a webhook that failed) are written either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestLogging {
    /// Every request (the default).
    All,
    /// Only requests answered with a 4xx or 5xx: Cloudflare's own invocation logs already
    /// record every request's path, status and time, and a busy API's successful lines
    /// cost log volume and CPU.
    Failures,
}

impl RequestLogging {
    /// `all` or `failures`.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim() {
            "all" => Ok(Self::All),
            "failures" => Ok(Self::Failures),
            other => Err(format!("must be `all` or `failures`, not `{other}`")),
        }
    }

    /// Whether a request answered with `status` gets its line.
    pub fn logs(self, status: u16) -> bool {
        match self {
            Self::All => true,
            Self::Failures => status >= 400,
        }
    }
}

/// Writes lines that all carry the same context.
#[derive(Debug, Clone)]
pub struct Logger {
    /// `("request_id", "req_...")`, `("cron", "*/5 * * * *")`, or nothing for the isolate.
    context: Option<(&'static str, String)>,
}

impl Logger {
    /// Lines about one request.
    pub fn for_request(request_id: &str) -> Self {
        Self {
            context: Some(("request_id", request_id.to_owned())),
        }
    }

    /// Lines about one scheduled run.
    pub fn for_cron(cron: &str) -> Self {
        Self {
            context: Some(("cron", cron.to_owned())),
        }
    }

    /// Lines about the isolate itself (its configuration), outside any request.
    pub fn isolate() -> Self {
        Self { context: None }
    }

    /// An `info` line.
    pub fn info(&self, msg: &str, fields: Value) {
        self.write(Level::Info, msg, fields);
    }

    /// A `warn` line.
    pub fn warn(&self, msg: &str, fields: Value) {
        self.write(Level::Warn, msg, fields);
    }

    /// An `error` line.
    pub fn error(&self, msg: &str, fields: Value) {
        self.write(Level::Error, msg, fields);
    }

    /// A line of `level`: errors and warnings go to the console's error and warning streams
    /// (wrangler marks them), the rest to its log.
    pub fn write(&self, level: Level, msg: &str, fields: Value) {
        let line = self.line(level, msg, fields);
        match level {
            Level::Info => worker::console_log!("{line}"),
            Level::Warn => worker::console_warn!("{line}"),
            Level::Error => worker::console_error!("{line}"),
        }
    }

    /// The JSON line, as written. `fields` is an object (anything else is kept under
    /// `detail`); it cannot override `level`, `msg` or the context.
    pub fn line(&self, level: Level, msg: &str, fields: Value) -> String {
        let mut line = match fields {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => Map::from_iter([("detail".to_owned(), other)]),
        };
        line.insert("level".to_owned(), Value::from(level.as_str()));
        line.insert("msg".to_owned(), Value::from(msg));
        if let Some((key, value)) = &self.context {
            line.insert((*key).to_owned(), Value::from(value.as_str()));
        }
        Value::Object(line).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(line: String) -> Value {
        serde_json::from_str(&line).unwrap()
    }

    #[test]
    fn every_line_carries_its_level_message_and_context() {
        let line = Logger::for_request("req_1").line(
            Level::Error,
            "stripe event failed",
            json!({ "event_id": "evt_1" }),
        );
        assert_eq!(
            parsed(line),
            json!({ "level": "error", "msg": "stripe event failed", "request_id": "req_1",
                    "event_id": "evt_1" })
        );
        let line = Logger::for_cron("0 * * * *").line(Level::Info, "sweep", Value::Null);
        assert_eq!(
            parsed(line),
            json!({ "level": "info", "msg": "sweep", "cron": "0 * * * *" })
        );
    }

    #[test]
    fn request_lines_are_written_for_every_request_or_only_for_failures() {
        assert_eq!(RequestLogging::parse("all"), Ok(RequestLogging::All));
        assert_eq!(
            RequestLogging::parse("failures"),
            Ok(RequestLogging::Failures)
        );
        assert!(RequestLogging::parse("some").is_err());
        assert!(RequestLogging::All.logs(200));
        assert!(!RequestLogging::Failures.logs(200));
        assert!(!RequestLogging::Failures.logs(304));
        assert!(RequestLogging::Failures.logs(404));
        assert!(RequestLogging::Failures.logs(503));
    }

    #[test]
    fn fields_cannot_override_the_context() {
        let line = Logger::for_request("req_1").line(
            Level::Info,
            "m",
            json!({ "request_id": "forged", "level": "debug", "msg": "x" }),
        );
        assert_eq!(
            parsed(line),
            json!({ "level": "info", "msg": "m", "request_id": "req_1" })
        );
        let line = Logger::isolate().line(Level::Warn, "m", json!("plain"));
        assert_eq!(
            parsed(line),
            json!({ "level": "warn", "msg": "m", "detail": "plain" })
        );
    }
}

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

//! `crown` (DESIGN §9.2): one `{"type": "repair", component, stack_trace, config_summary,
//! history}` text frame on the Crown WebSocket ([`crate::crown::client::exchange`]: one
//! deadline, a reply size cap, the bearer token only in the `Authorization` header); the reply
//! object is `{patch | diff, summary?, tests?}`.
//!
//! `stack_trace` is the text a person would read first: the error, the exit status, the last
//! probe output and the last log lines of the failure context. `config_summary` is the
//! context's redacted `config`, `history` its last invocation records.

use serde_json::{Map, Value, json};

use super::{AgentError, Suggestion, from_arguments};

/// The repair frame for the failure context `context`.
pub fn frame(context: &Value) -> Value {
    json!({
        "type": "repair",
        "component": context["component"],
        "stack_trace": stack_trace(context),
        "config_summary": context["config"],
        "history": context.get("history").cloned().unwrap_or_else(|| json!([])),
    })
}

fn stack_trace(context: &Value) -> String {
    let mut text = context["error"].as_str().unwrap_or_default().to_owned();
    let mut section = |title: &str, v: &Value| {
        let body = match v {
            Value::Null => return,
            Value::String(s) if s.is_empty() => return,
            Value::String(s) => s.clone(),
            Value::Array(lines) if lines.is_empty() => return,
            Value::Array(lines) => lines
                .iter()
                .map(|l| l.as_str().map_or_else(|| l.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join("\n"),
            other => other.to_string(),
        };
        text.push_str(&format!("\n\n{title}:\n{body}"));
    };
    section("exit status", &context["exit_status"]);
    section("last probe output", &context["last_probe_output"]);
    section("last log lines", &context["log_tail"]);
    if let Some(extra) = context.get("operator_context") {
        section("operator context", extra);
    }
    text
}

/// The suggestion in the Crown's reply object: `patch`, else `diff`.
pub fn suggest(reply: &Map<String, Value>) -> Result<Suggestion, AgentError> {
    let mut args = Value::Object(reply.clone());
    if args.get("patch").and_then(Value::as_str).is_none_or(|p| p.trim().is_empty())
        && let Some(diff) = reply.get("diff").cloned()
    {
        args["patch"] = diff;
    }
    from_arguments(&args).map_err(|e| match e {
        AgentError::NoPatch(_) => AgentError::NoPatch("the Crown's reply has neither `patch` nor `diff`".into()),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIFF: &str = "--- a/svc/app.py\n+++ b/svc/app.py\n@@ -1 +1 @@\n-print(1/0)\n+print(1)\n";

    #[test]
    fn the_frame_has_the_documented_fields_only() {
        let ctx = json!({"component": "api", "error": "ZeroDivisionError", "exit_status": "exited with 1",
            "last_probe_output": null, "log_tail": ["a", "b"], "config": {"name": "api", "env": {"K": "***"}},
            "history": [{"event": "attempt"}], "sources": [{"path": "svc/app.py", "content": "print(1/0)\n"}]});
        let f = frame(&ctx);
        let keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["component", "config_summary", "history", "stack_trace", "type"]);
        assert_eq!((f["type"].as_str(), f["component"].as_str()), (Some("repair"), Some("api")));
        assert_eq!(f["stack_trace"], "ZeroDivisionError\n\nexit status:\nexited with 1\n\nlast log lines:\na\nb");
        assert_eq!(f["config_summary"]["env"]["K"], "***");
        assert_eq!(f["history"], json!([{"event": "attempt"}]));
    }

    #[test]
    fn the_patch_comes_from_patch_or_diff() {
        let obj = |v: Value| v.as_object().unwrap().clone();
        let s = suggest(&obj(json!({"diff": DIFF, "summary": "one"}))).unwrap();
        assert_eq!((s.patch.as_str(), s.summary.as_deref()), (DIFF, Some("one")));
        assert_eq!(suggest(&obj(json!({"patch": DIFF, "diff": "x"}))).unwrap().patch, DIFF);
        let e = suggest(&obj(json!({"ack": "ok"}))).unwrap_err();
        assert!(matches!(e, AgentError::NoPatch(ref m) if m.contains("neither `patch` nor `diff`")), "{e}");
    }
}

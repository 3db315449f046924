//! What a chat message may be, and what the model is sent: the org's instructions, the
//! session's recent messages, then the new one.

use serde::Deserialize;

use crate::core::body::FieldError;
use crate::orgs::rules::OrgConfig;

/// The longest message a visitor may send, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// How many of a session's latest messages go with a new one (ten exchanges).
pub const HISTORY_MESSAGES: u32 = 20;
/// The reply allowance when the org's configuration sets none, in tokens.
pub const DEFAULT_MAX_REPLY_TOKENS: u64 = 512;
/// Messages one visitor of one site may send per minute (the `RATE_LIMIT_20` binding); one
/// address may send twice that to one site (`RATE_LIMIT_40`, see
/// [`crate::sites::rules::per_address`]).
pub const MESSAGES_PER_MINUTE: u32 = 20;
/// Session ids: `cs_` and 24 letters or digits.
const SESSION_PREFIX: &str = "cs_";
const SESSION_RANDOM: usize = 24;

/// A `POST /chat` body, as the seed's widget sends it (`sessionId` and `visitorId` are also
/// read). Unknown fields are ignored.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = ChatRequest)]
pub struct ChatBody {
    /// What the visitor wrote (1 to 4000 characters, not only spaces).
    #[schema(min_length = 1, max_length = 4000)]
    pub message: String,
    /// The session this message continues (from an earlier answer); absent on the first.
    #[serde(default, alias = "sessionId")]
    #[schema(pattern = r"^cs_[A-Za-z0-9]{24}$")]
    pub session_id: Option<String>,
    /// The widget's label for the visitor (rate limits and logs are per visitor).
    #[serde(default, alias = "visitorId")]
    #[schema(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9._:@-]+$")]
    pub visitor_id: Option<String>,
    /// Answer as a server-sent event stream.
    #[serde(default)]
    pub stream: Option<bool>,
}

/// A message checked: what the flow works from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub message: String,
    pub session_id: Option<String>,
    pub visitor_id: Option<String>,
    pub stream: bool,
}

/// Checks a body, reporting every problem under its field.
pub fn check(body: ChatBody) -> Result<ChatMessage, Vec<FieldError>> {
    let mut problems = Vec::new();
    let chars = body.message.chars().count();
    if body.message.trim().is_empty() || chars > MAX_MESSAGE_CHARS {
        problems.push(FieldError::new(
            "message",
            format!("must be 1 to {MAX_MESSAGE_CHARS} characters, not only spaces"),
        ));
    }
    if let Some(id) = &body.session_id {
        if !is_session_id(id) {
            problems.push(FieldError::new(
                "session_id",
                "must be a session id this endpoint answered with (cs_ and 24 letters or digits)",
            ));
        }
    }
    if let Some(problem) = body
        .visitor_id
        .as_deref()
        .and_then(crate::sites::rules::visitor_id)
    {
        problems.push(problem);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ChatMessage {
        message: body.message,
        session_id: body.session_id,
        visitor_id: body.visitor_id,
        stream: body.stream.unwrap_or(false),
    })
}

/// Whether `id` has a session id's shape.
pub fn is_session_id(id: &str) -> bool {
    id.strip_prefix(SESSION_PREFIX).is_some_and(|rest| {
        rest.len() == SESSION_RANDOM && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// The prefix of a session id; the rest is 12 random bytes in hex (`core::random::id`).
pub const SESSION_ID_PREFIX: &str = SESSION_PREFIX;

crate::stored_enum! {
    /// Who wrote a logged message (`chat_messages.role`): the site's visitor or the model.
    pub enum MessageRole ("chat message role") {
        User = "user",
        Assistant = "assistant",
    }
}

/// One message of a conversation, as the model is sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub role: &'static str,
    pub content: String,
}

/// Who the model speaks for when the org wrote no instructions.
pub fn default_system_prompt(org_name: &str, config: &OrgConfig) -> String {
    let name = config.display_name.as_deref().unwrap_or(org_name);
    format!(
        "You are the assistant on {name}'s website. Answer visitors' questions helpfully and \
         briefly; say so when you do not know."
    )
}

/// What the model is sent: the org's instructions, the session's recent messages (oldest
/// first) and the new message.
pub fn conversation(
    system: String,
    history: impl IntoIterator<Item = (MessageRole, String)>,
    message: &str,
) -> Vec<Turn> {
    let mut turns = vec![Turn {
        role: "system",
        content: system,
    }];
    for (role, content) in history {
        let role = match role {
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
        };
        turns.push(Turn { role, content });
    }
    turns.push(Turn {
        role: "user",
        content: message.to_owned(),
    });
    turns
}

/// The model an org's message goes to: the org's `default_model`, else the operator's
/// `default`; `None` when the org's model is no longer in the catalog (`offered`, which
/// shrank since the org chose it), so the message is refused rather than sent to a model
/// the operator stopped offering.
pub fn model_for(org_model: Option<&str>, default: &str, offered: &[String]) -> Option<String> {
    match org_model {
        Some(model) => offered.iter().any(|m| m == model).then(|| model.to_owned()),
        None => Some(default.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(message: &str) -> ChatBody {
        ChatBody {
            message: message.to_owned(),
            session_id: None,
            visitor_id: None,
            stream: None,
        }
    }

    #[test]
    fn messages_are_checked_whole() {
        assert!(check(body("hi")).is_ok());
        assert!(check(body(&"é".repeat(MAX_MESSAGE_CHARS))).is_ok());
        for bad in ["", "   \n", &"x".repeat(MAX_MESSAGE_CHARS + 1)] {
            let problems = check(body(bad)).unwrap_err();
            assert_eq!(problems.len(), 1, "{bad:?}");
        }
        let mut every = body("");
        every.session_id = Some("uuid-here".into());
        every.visitor_id = Some("has space".into());
        assert_eq!(check(every).unwrap_err().len(), 3);
    }

    #[test]
    fn session_ids_have_one_shape() {
        let id = format!("{SESSION_ID_PREFIX}{}", "a1".repeat(12));
        assert!(is_session_id(&id));
        assert!(!is_session_id("cs_short"));
        assert!(!is_session_id(&format!("xx_{}", "a".repeat(24))));
        assert!(!is_session_id(&format!("cs_{}!", "a".repeat(23))));
    }

    #[test]
    fn the_conversation_is_instructions_history_then_message() {
        let turns = conversation(
            "be brief".into(),
            vec![
                (MessageRole::User, "q1".to_owned()),
                (MessageRole::Assistant, "a1".to_owned()),
            ],
            "q2",
        );
        let shape: Vec<_> = turns.iter().map(|t| (t.role, t.content.as_str())).collect();
        assert_eq!(
            shape,
            [
                ("system", "be brief"),
                ("user", "q1"),
                ("assistant", "a1"),
                ("user", "q2")
            ]
        );
    }

    #[test]
    fn the_orgs_model_is_used_only_while_the_catalog_offers_it() {
        let offered = ["a/one".to_owned(), "b/two".to_owned()];
        assert_eq!(model_for(None, "a/one", &offered).as_deref(), Some("a/one"));
        assert_eq!(
            model_for(Some("b/two"), "a/one", &offered).as_deref(),
            Some("b/two")
        );
        assert_eq!(model_for(Some("gone/model"), "a/one", &offered), None);
    }

    #[test]
    fn message_roles_map_to_their_column_both_ways() {
        crate::core::stored::check::<MessageRole>();
    }
}

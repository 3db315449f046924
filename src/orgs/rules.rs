//! Organisations: their slugs, statuses and configuration, and who may act on which org in
//! the portal. Pure: no storage, no worker.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::core::body::FieldError;

/// An org's standing. Only an `active` org's sites answer; the portal stays readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrgStatus {
    Active,
    Inactive,
    Churned,
}

// Its serde derive is the API's (a new org's `status`) and reads the column too: the
// texts are the same, which the tests check against `as_str`.
crate::stored_impls!(OrgStatus("org status"));

impl OrgStatus {
    /// Every status.
    pub const ALL: [OrgStatus; 3] = [OrgStatus::Active, OrgStatus::Inactive, OrgStatus::Churned];

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            OrgStatus::Active => "active",
            OrgStatus::Inactive => "inactive",
            OrgStatus::Churned => "churned",
        }
    }
}

/// Checks an org's slug: 2–32 of `[a-z0-9]`. It is the `{client}` part of the org's site keys
/// (`sk_{slug}_{env}_{random}`), so it holds no `_`.
pub fn slug(slug: &str) -> Result<&str, &'static str> {
    let ok = (2..=32).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(slug)
    } else {
        Err("must be 2 to 32 lowercase letters or digits")
    }
}

/// Checks an org's name: 1–100 characters, not blank.
pub fn name(name: &str) -> Result<&str, &'static str> {
    let trimmed = name.trim();
    if trimmed.is_empty() || name.chars().count() > 100 {
        Err("must be 1 to 100 characters")
    } else {
        Ok(trimmed)
    }
}

/// Checks a Clerk organisation id: `org_` and 1–60 letters or digits.
pub fn clerk_org_id(id: &str) -> Result<&str, &'static str> {
    let rest = id.strip_prefix("org_").unwrap_or("");
    if (1..=60).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        Err("must be a Clerk organisation id: org_ and 1 to 60 letters or digits")
    }
}

/// An org's configuration, as stored and shown: what its sites say and how they answer.
/// Every field is optional; an absent field takes the operator's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrgConfig {
    /// The name the widget shows (1–80 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The first message a visitor sees (1–500 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeting: Option<String>,
    /// The widget's colour, `#rrggbb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theme_color: Option<String>,
    /// The instructions the model gets before every conversation (1–8000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// The model the org's sites use: one of the operator's `CHAT_MODELS` (`GET /v1/models`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_model: Option<String>,
    /// The longest reply, in tokens (1–32000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reply_tokens: Option<u32>,
    /// Sampling temperature, 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// The voices the org's sites may speak with (1 to 5, distinct `voice_id`s); the first is
    /// the default. A `/voice` request naming another voice or model is refused. Absent, the
    /// sites speak only with the operator's `ELEVENLABS_VOICE_ID` and `ELEVENLABS_MODEL_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 5)]
    pub voices: Option<Vec<VoiceChoice>>,
}

/// One voice an org offers on its sites: an ElevenLabs voice and the model it speaks with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VoiceChoice {
    /// An ElevenLabs voice id (1–64 letters, digits, `_` or `-`).
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub voice_id: String,
    /// The ElevenLabs model it speaks with (1–64 letters, digits, `_` or `-`).
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub model_id: String,
    /// What the widget calls it (1–80 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 80)]
    pub name: Option<String>,
}

/// The most voices an org may offer.
pub const MAX_VOICES: usize = 5;

/// Whether `id` may be an ElevenLabs voice or model id (it goes into the provider's path).
pub fn is_voice_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl OrgConfig {
    /// The stored configuration (a row written by [`apply_patch`]; anything unreadable reads
    /// as no configuration, so the defaults apply).
    pub fn from_stored(json: &str) -> Self {
        serde_json::from_str(json).unwrap_or_default()
    }

    /// As stored.
    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// The configuration fields, in the order problems are reported.
pub const CONFIG_FIELDS: [&str; 8] = [
    "display_name",
    "greeting",
    "theme_color",
    "system_prompt",
    "default_model",
    "max_reply_tokens",
    "temperature",
    "voices",
];

/// Applies a `PATCH` body to `config`: each field given replaces the stored one, `null`
/// clears it, an absent field stays. Every problem is reported under its field (unknown
/// fields too); with any problem nothing is applied. `default_model` must be one of
/// `models` (the operator's `CHAT_MODELS`). Returns the new configuration and the names of
/// the fields given.
pub fn apply_patch(
    config: &OrgConfig,
    patch: &Value,
    models: &[String],
) -> Result<(OrgConfig, Vec<String>), Vec<FieldError>> {
    let Some(patch) = patch.as_object() else {
        return Err(vec![FieldError::new("body", "must be a JSON object")]);
    };
    let mut next = config.clone();
    let mut problems = Vec::new();
    for (field, value) in patch {
        if let Err(why) = set_field(&mut next, field, value, models) {
            problems.push(FieldError::new(field.clone(), why));
        }
    }
    if patch.is_empty() {
        problems.push(FieldError::new(
            "body",
            format!("name at least one of: {}", CONFIG_FIELDS.join(", ")),
        ));
    }
    if problems.is_empty() {
        let mut changed: Vec<String> = patch.keys().cloned().collect();
        changed.sort_by_key(|f| CONFIG_FIELDS.iter().position(|c| c == f));
        Ok((next, changed))
    } else {
        problems.sort_by_key(|p| {
            CONFIG_FIELDS
                .iter()
                .position(|c| *c == p.field)
                .unwrap_or(CONFIG_FIELDS.len())
        });
        Err(problems)
    }
}

fn text(value: &Value, max: usize) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if !s.trim().is_empty() && s.chars().count() <= max => Ok(Some(s.clone())),
        _ => Err(format!(
            "must be a string of 1 to {max} characters, or null"
        )),
    }
}

fn set_field(
    config: &mut OrgConfig,
    field: &str,
    value: &Value,
    models: &[String],
) -> Result<(), String> {
    match field {
        "display_name" => config.display_name = text(value, 80)?,
        "greeting" => config.greeting = text(value, 500)?,
        "system_prompt" => config.system_prompt = text(value, 8000)?,
        "theme_color" => {
            config.theme_color = match value {
                Value::Null => None,
                Value::String(s) if is_hex_colour(s) => Some(s.to_ascii_lowercase()),
                _ => return Err("must be a colour `#rrggbb`, or null".to_owned()),
            }
        }
        "default_model" => {
            config.default_model = match value {
                Value::Null => None,
                Value::String(s) if models.contains(s) => Some(s.clone()),
                _ => {
                    return Err(format!(
                        "must be one of the models offered here ({}), or null",
                        models.join(", ")
                    ))
                }
            }
        }
        "voices" => config.voices = voices(value)?,
        "max_reply_tokens" => {
            config.max_reply_tokens = match value {
                Value::Null => None,
                Value::Number(n) => match n.as_u64() {
                    Some(n @ 1..=32_000) => Some(n as u32),
                    _ => return Err("must be a whole number from 1 to 32000, or null".to_owned()),
                },
                _ => return Err("must be a whole number from 1 to 32000, or null".to_owned()),
            }
        }
        "temperature" => {
            config.temperature = match value {
                Value::Null => None,
                Value::Number(n) => match n.as_f64() {
                    Some(t) if (0.0..=2.0).contains(&t) => Some(t),
                    _ => return Err("must be a number from 0 to 2, or null".to_owned()),
                },
                _ => return Err("must be a number from 0 to 2, or null".to_owned()),
            }
        }
        _ => {
            return Err(format!(
                "is not a configuration field; the fields are: {}",
                CONFIG_FIELDS.join(", ")
            ))
        }
    }
    Ok(())
}

/// A `voices` value: `null`, or 1 to [`MAX_VOICES`] objects with `voice_id`, `model_id` and
/// an optional `name`, no two with the same `voice_id`.
fn voices(value: &Value) -> Result<Option<Vec<VoiceChoice>>, String> {
    let why = || {
        format!(
            "must be a list of 1 to {MAX_VOICES} voices {{voice_id, model_id, name?}} with \
             distinct voice_ids (ids: 1 to 64 letters, digits, `_` or `-`; name: 1 to 80 \
             characters), or null"
        )
    };
    let list = match value {
        Value::Null => return Ok(None),
        Value::Array(list) if (1..=MAX_VOICES).contains(&list.len()) => list,
        _ => return Err(why()),
    };
    let mut choices: Vec<VoiceChoice> = Vec::with_capacity(list.len());
    for item in list {
        let fields = item.as_object().ok_or_else(why)?;
        let known = ["voice_id", "model_id", "name"];
        if fields.keys().any(|k| !known.contains(&k.as_str())) {
            return Err(why());
        }
        let id = |name: &str| {
            fields
                .get(name)
                .and_then(Value::as_str)
                .filter(|id| is_voice_id(id))
                .map(str::to_owned)
                .ok_or_else(why)
        };
        let name = match fields.get("name") {
            None | Some(Value::Null) => None,
            Some(value) => text(value, 80).map_err(|_| why())?,
        };
        let choice = VoiceChoice {
            voice_id: id("voice_id")?,
            model_id: id("model_id")?,
            name,
        };
        if choices.iter().any(|c| c.voice_id == choice.voice_id) {
            return Err(why());
        }
        choices.push(choice);
    }
    Ok(Some(choices))
}

fn is_hex_colour(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s.bytes().skip(1).all(|b| b.is_ascii_hexdigit())
}

/// What a portal route needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A member (any role) of the org acted on, or staff.
    Member,
    /// An admin of the org acted on, or staff.
    Admin,
    /// Staff only; the route acts on no one org.
    Staff,
}

/// What the caller shows the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asker<'a> {
    /// Whether they are staff (`STAFF_USER_IDS`, or a member of `STAFF_ORG_ID`).
    pub staff: bool,
    /// The Clerk organisation of their token, if it is a Clerk token naming one, and whether
    /// they are its admin.
    pub token_org: Option<(&'a str, bool)>,
    /// The `?orgId=` they passed, if any.
    pub requested: Option<&'a str>,
}

/// Which org the portal acts on, before it is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// No org (a staff-only route).
    None,
    /// The org a staff member named by `?orgId=`: Tollgate's id or its Clerk id.
    Named(&'a str),
    /// The org mapped to the caller's own Clerk organisation; a `?orgId=` given must name
    /// this same org (Tollgate's id or the Clerk id), which is checked once it is found.
    Own {
        clerk_org_id: &'a str,
        requested: Option<&'a str>,
    },
}

/// Why the portal refuses, before any lookup (`403`, or `400` for staff who named no org).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A staff-only route, and the caller is not staff.
    StaffOnly,
    /// The caller's token names no organisation.
    NoOrg,
    /// Staff without an organisation in their token must name one with `?orgId=`.
    StaffMustName,
    /// The org acted on needs an admin, and the caller is a member.
    AdminOnly,
    /// The `?orgId=` is not the caller's own org.
    OtherOrg,
}

impl Refusal {
    /// The sentence the refusal carries.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::StaffOnly => "this portal route is for staff only",
            Refusal::NoOrg => {
                "your session names no organisation; select one (Clerk's active organisation)"
            }
            Refusal::StaffMustName => "name the organisation to act on with ?orgId=",
            Refusal::AdminOnly => "this needs an admin of the organisation",
            Refusal::OtherOrg => "you may only act on your own organisation",
        }
    }
}

/// Which org a portal request acts on, and whether its caller may: staff may name any org
/// with `?orgId=`; anyone else acts on the org of their token, and naming another is refused
/// (never answered with their own org or the other one).
pub fn decide<'a>(need: Need, asker: &Asker<'a>) -> Result<Lookup<'a>, Refusal> {
    if need == Need::Staff {
        return if asker.staff {
            Ok(Lookup::None)
        } else {
            Err(Refusal::StaffOnly)
        };
    }
    if asker.staff {
        return match (asker.requested, asker.token_org) {
            (Some(named), _) => Ok(Lookup::Named(named)),
            (None, Some((clerk_org_id, _))) => Ok(Lookup::Own {
                clerk_org_id,
                requested: None,
            }),
            (None, None) => Err(Refusal::StaffMustName),
        };
    }
    let Some((clerk_org_id, admin)) = asker.token_org else {
        return Err(Refusal::NoOrg);
    };
    if need == Need::Admin && !admin {
        return Err(Refusal::AdminOnly);
    }
    Ok(Lookup::Own {
        clerk_org_id,
        requested: asker.requested,
    })
}

/// Whether a `?orgId=` names this org (by Tollgate's id or its Clerk id).
pub fn names_org(requested: &str, id: &str, clerk_org_id: Option<&str>) -> bool {
    requested == id || clerk_org_id == Some(requested)
}

/// The longest daily series one insights request may ask for.
pub const MAX_SERIES_DAYS: i64 = 366;

/// A UTC day `YYYY-MM-DD`, as days since 1970-01-01.
pub fn parse_day(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year: i64 = text[..4].parse().ok()?;
    let month: u32 = text[5..7].parse().ok()?;
    let day: u32 = text[8..].parse().ok()?;
    if !(1..=12).contains(&month) || day == 0 {
        return None;
    }
    let days = crate::core::time::days_from_civil(year, month, day);
    // 2026-02-30 is not a day: it must read back as itself.
    (format_day(days) == text).then_some(days)
}

/// The UTC day `days` after 1970-01-01, as `YYYY-MM-DD`.
pub fn format_day(days: i64) -> String {
    let (year, month, day) = crate::core::time::civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// A configuration field map without `null`s, as shown (absent fields are the defaults).
pub fn config_view(config: &OrgConfig) -> Map<String, Value> {
    match serde_json::to_value(config) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn org_statuses_map_to_their_column_both_ways() {
        crate::core::stored::check::<OrgStatus>();
    }

    #[test]
    fn slugs_are_short_lowercase_alphanumerics() {
        assert_eq!(slug("chadis"), Ok("chadis"));
        assert_eq!(slug("pannudental2"), Ok("pannudental2"));
        for bad in [
            "c",
            "Chadis",
            "pannu_dental",
            "pannu-dental",
            "",
            &"a".repeat(33),
        ] {
            assert!(slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn clerk_org_ids_are_checked() {
        assert!(clerk_org_id("org_2abcDEF").is_ok());
        for bad in [
            "org_",
            "2abc",
            "org_a-b",
            "ORG_abc",
            &format!("org_{}", "a".repeat(61)),
        ] {
            assert!(clerk_org_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_patch_replaces_given_fields_clears_nulls_and_keeps_the_rest() {
        let stored = OrgConfig {
            display_name: Some("CHADIS".into()),
            greeting: Some("Hi".into()),
            ..OrgConfig::default()
        };
        let (next, changed) = apply_patch(
            &stored,
            &json!({ "greeting": null, "theme_color": "#A1B2C3", "temperature": 0.5,
                     "max_reply_tokens": 400 }),
            &models(),
        )
        .unwrap();
        assert_eq!(next.display_name.as_deref(), Some("CHADIS"));
        assert_eq!(next.greeting, None);
        assert_eq!(next.theme_color.as_deref(), Some("#a1b2c3"));
        assert_eq!(next.temperature, Some(0.5));
        assert_eq!(next.max_reply_tokens, Some(400));
        assert_eq!(
            changed,
            ["greeting", "theme_color", "max_reply_tokens", "temperature"]
        );
        assert_eq!(OrgConfig::from_stored(&next.to_stored()), next);
    }

    fn models() -> Vec<String> {
        vec!["a/one".to_owned(), "b/two".to_owned()]
    }

    #[test]
    fn every_bad_field_is_reported_and_nothing_applies() {
        let err = apply_patch(
            &OrgConfig::default(),
            &json!({ "theme_color": "red", "temperature": 3, "max_reply_tokens": 0,
                     "display_name": "", "colour": "#fff", "default_model": "a b",
                     "system_prompt": "x".repeat(8001), "greeting": 5, "voices": [] }),
            &models(),
        )
        .unwrap_err();
        let fields: Vec<&str> = err.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "display_name",
                "greeting",
                "theme_color",
                "system_prompt",
                "default_model",
                "max_reply_tokens",
                "temperature",
                "voices",
                "colour"
            ]
        );
        let none = OrgConfig::default();
        assert!(apply_patch(&none, &json!({}), &models()).is_err());
        assert!(apply_patch(&none, &json!([1]), &models()).is_err());
        assert!(apply_patch(&none, &json!({ "max_reply_tokens": 1.5 }), &models()).is_err());
    }

    #[test]
    fn the_default_model_is_one_the_operator_offers() {
        let none = OrgConfig::default();
        let (next, _) =
            apply_patch(&none, &json!({ "default_model": "b/two" }), &models()).unwrap();
        assert_eq!(next.default_model.as_deref(), Some("b/two"));
        let err =
            apply_patch(&none, &json!({ "default_model": "c/three" }), &models()).unwrap_err();
        assert_eq!(err[0].field, "default_model");
        assert!(
            err[0].message.contains("a/one, b/two"),
            "{}",
            err[0].message
        );
    }

    #[test]
    fn voices_are_a_short_list_of_distinct_safe_ids() {
        let none = OrgConfig::default();
        let two = json!({ "voices": [
            { "voice_id": "v1", "model_id": "m1", "name": "Ana" },
            { "voice_id": "v2", "model_id": "m2" },
        ] });
        let (next, _) = apply_patch(&none, &two, &models()).unwrap();
        let voices = next.voices.clone().unwrap();
        assert_eq!(voices[0].name.as_deref(), Some("Ana"));
        assert_eq!(
            (voices[1].voice_id.as_str(), voices[1].name.as_deref()),
            ("v2", None)
        );
        assert_eq!(OrgConfig::from_stored(&next.to_stored()), next);
        let one = |v: Value| json!({ "voices": [v] });
        for bad in [
            json!({ "voices": [] }),
            json!({ "voices": "v1" }),
            json!({ "voices": vec![json!({ "voice_id": "v", "model_id": "m" }); 2] }),
            json!({ "voices": (0..6).map(|i| json!({ "voice_id": format!("v{i}"), "model_id": "m" })).collect::<Vec<_>>() }),
            one(json!({ "voice_id": "../x", "model_id": "m" })),
            one(json!({ "voice_id": "v" })),
            one(json!({ "voice_id": "v", "model_id": "m", "name": "" })),
            one(json!({ "voice_id": "v", "model_id": "m", "colour": "red" })),
        ] {
            let err = apply_patch(&none, &bad, &models()).unwrap_err();
            assert_eq!(err[0].field, "voices", "{bad}");
        }
        let (cleared, _) = apply_patch(&next, &json!({ "voices": null }), &models()).unwrap();
        assert_eq!(cleared.voices, None);
    }

    #[test]
    fn days_are_utc_calendar_days() {
        let d = parse_day("2026-11-28").unwrap();
        assert_eq!(format_day(d), "2026-11-28");
        assert_eq!(parse_day("2026-12-01"), Some(d + 3));
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "2026-1-01",
            "26-11-28",
            "2026/11/28",
            "",
        ] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }

    fn asker<'a>(
        staff: bool,
        token_org: Option<(&'a str, bool)>,
        requested: Option<&'a str>,
    ) -> Asker<'a> {
        Asker {
            staff,
            token_org,
            requested,
        }
    }

    #[test]
    fn members_act_on_their_own_org_and_only_staff_name_another() {
        let member = asker(false, Some(("org_a", false)), None);
        assert_eq!(
            decide(Need::Member, &member),
            Ok(Lookup::Own {
                clerk_org_id: "org_a",
                requested: None
            })
        );
        assert_eq!(decide(Need::Admin, &member), Err(Refusal::AdminOnly));
        assert_eq!(decide(Need::Staff, &member), Err(Refusal::StaffOnly));
        // Another org's id is carried to the check against the org found, never looked up.
        let prying = asker(false, Some(("org_a", true)), Some("org_b"));
        assert_eq!(
            decide(Need::Admin, &prying),
            Ok(Lookup::Own {
                clerk_org_id: "org_a",
                requested: Some("org_b")
            })
        );
        assert!(!names_org("org_b", "org_tga", Some("org_a")));
        assert!(names_org("org_a", "org_tga", Some("org_a")));
        assert!(names_org("org_tga", "org_tga", Some("org_a")));
        assert_eq!(
            decide(Need::Member, &asker(false, None, Some("org_b"))),
            Err(Refusal::NoOrg)
        );
        let staff = asker(true, None, Some("org_b"));
        assert_eq!(decide(Need::Admin, &staff), Ok(Lookup::Named("org_b")));
        assert_eq!(decide(Need::Staff, &staff), Ok(Lookup::None));
        assert_eq!(
            decide(Need::Member, &asker(true, None, None)),
            Err(Refusal::StaffMustName)
        );
    }
}

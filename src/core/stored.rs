//! States stored as text in a column with a fixed set of values (a `CHECK (... IN (...))`):
//! each is an enum whose values' texts are written once, in [`stored_enum!`] or in the
//! enum's own `as_str`, and reading a row, binding a value and serde all go through that one
//! mapping. [`check`] tests an enum both ways: every value round-trips, and a text no value
//! has is an error.

use std::fmt;

/// An enum stored as text.
pub trait Stored: Copy + Eq + fmt::Debug + 'static {
    /// What it is, for errors (`user status`).
    const WHAT: &'static str;
    /// Every value.
    const ALL: &'static [Self];
    /// The text its column holds.
    fn as_str(self) -> &'static str;
}

/// A stored text that no value has (the schema forbids it; a row that has one is corrupt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    pub what: &'static str,
    pub text: String,
}

impl fmt::Display for Unknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} `{}`", self.what, self.text)
    }
}

impl std::error::Error for Unknown {}

/// The value stored as `text`.
pub fn parse<T: Stored>(text: &str) -> Result<T, Unknown> {
    T::ALL
        .iter()
        .copied()
        .find(|value| value.as_str() == text)
        .ok_or_else(|| Unknown {
            what: T::WHAT,
            text: text.to_owned(),
        })
}

/// Defines an enum stored as text: each value with its text, once. It gets `ALL`, `as_str`,
/// and everything [`stored_impls!`] gives (with serde), so a row struct reads the column
/// directly.
#[macro_export]
macro_rules! stored_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            /// The text its column holds.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        $crate::stored_impls!($name ($what), serde);
    };
}

/// For an enum with its own `ALL` (an array) and `as_str` (the one mapping): [`Stored`], `FromStr` (an
/// unknown text is an [`Unknown`]) and `Display` through it; with `serde`, also `Serialize`
/// and `Deserialize` as that text; with `deserialize`, only `Deserialize`, for an enum whose
/// `Serialize` is derived for the API ([`check`] tests that the derive writes the same
/// texts).
#[macro_export]
macro_rules! stored_impls {
    ($name:ident ($what:literal)) => {
        impl $crate::core::stored::Stored for $name {
            const WHAT: &'static str = $what;
            const ALL: &'static [$name] = &$name::ALL;
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::core::stored::Unknown;
            fn from_str(text: &str) -> ::std::result::Result<Self, Self::Err> {
                $crate::core::stored::parse(text)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str($name::as_str(*self))
            }
        }
    };
    ($name:ident ($what:literal), serde) => {
        $crate::stored_impls!($name($what), deserialize);

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str($name::as_str(*self))
            }
        }
    };
    ($name:ident ($what:literal), deserialize) => {
        $crate::stored_impls!($name($what));

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::std::result::Result<Self, D::Error> {
                let text =
                    <::std::string::String as ::serde::Deserialize>::deserialize(deserializer)?;
                $crate::core::stored::parse(&text).map_err(::serde::de::Error::custom)
            }
        }
    };
}

/// Tests a stored enum both ways: every value's text reads back as that value (through
/// [`parse`] and through serde), serde writes the same text, no two values share a text, and
/// texts no value has (empty, upper case, padded, unknown) are errors.
#[cfg(test)]
pub fn check<T>()
where
    T: Stored + serde::Serialize + serde::de::DeserializeOwned,
{
    let mut seen = std::collections::BTreeSet::new();
    assert!(!T::ALL.is_empty(), "{}: no values", T::WHAT);
    for &value in T::ALL {
        let text = value.as_str();
        assert!(seen.insert(text), "{}: `{text}` twice", T::WHAT);
        assert_eq!(parse::<T>(text), Ok(value), "{}: `{text}`", T::WHAT);
        assert_eq!(
            serde_json::to_value(value).unwrap(),
            serde_json::Value::from(text),
            "{}: serde writes {value:?} as its text",
            T::WHAT
        );
        assert_eq!(
            serde_json::from_value::<T>(serde_json::Value::from(text)).unwrap(),
            value,
            "{}: serde reads `{text}`",
            T::WHAT
        );
        for wrong in [text.to_uppercase(), format!(" {text}"), format!("{text}x")] {
            if wrong != text {
                assert!(parse::<T>(&wrong).is_err(), "{}: `{wrong}`", T::WHAT);
            }
        }
    }
    for wrong in ["", "unknown", "null"] {
        let err = parse::<T>(wrong).expect_err(wrong);
        assert_eq!(err.to_string(), format!("unknown {} `{wrong}`", T::WHAT));
        assert!(serde_json::from_value::<T>(serde_json::Value::from(wrong)).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::stored_enum! {
        /// A test enum.
        enum Light ("light") {
            Red = "red",
            /// Documented values keep their docs.
            Amber = "amber",
            Green = "green",
        }
    }

    #[test]
    fn a_stored_enum_maps_each_value_to_its_text_once() {
        check::<Light>();
        assert_eq!(Light::ALL, [Light::Red, Light::Amber, Light::Green]);
        assert_eq!(Light::Amber.as_str(), "amber");
        assert_eq!(Light::Amber.to_string(), "amber");
        assert_eq!("green".parse::<Light>(), Ok(Light::Green));
        assert_eq!(
            "blue".parse::<Light>(),
            Err(Unknown {
                what: "light",
                text: "blue".into()
            })
        );
    }

    #[test]
    fn a_row_reads_its_column_as_the_enum() {
        #[derive(serde::Deserialize)]
        struct Row {
            light: Light,
            previous: Option<Light>,
        }
        let row: Row =
            serde_json::from_value(serde_json::json!({ "light": "red", "previous": null }))
                .unwrap();
        assert_eq!((row.light, row.previous), (Light::Red, None));
        let err = serde_json::from_value::<Row>(serde_json::json!({ "light": "blue" }))
            .err()
            .unwrap();
        assert!(err.to_string().contains("unknown light `blue`"), "{err}");
    }
}

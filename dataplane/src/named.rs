//! Codes that have a kernel name and a kernel number (bonding modes, hash
//! policies, option values), declared once: the variants, their names and
//! numbers, parsing from either, display, and serde as the name.

#[doc(hidden)]
pub use serde as __serde;

/// Declare an enum whose variants each have a kernel name and number:
///
/// ```
/// xbond_dataplane::named_enum!(
///     /// `lacp_rate`.
///     LacpRate { Slow = ("slow", 0), Fast = ("fast", 1) } default Slow);
/// assert_eq!(LacpRate::lookup("1"), Some(LacpRate::Fast));
/// assert_eq!(LacpRate::Fast.name(), "fast");
/// ```
#[macro_export]
macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = ($text:literal, $num:literal)),* $(,)? } default $default:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant = $num),* }

        impl Default for $name {
            fn default() -> Self { $name::$default }
        }

        impl $name {
            /// Every value: (name, number, variant).
            pub const TABLE: &'static [(&'static str, u64, $name)] = &[$(($text, $num, $name::$variant)),*];

            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            pub fn number(self) -> u64 {
                match self { $($name::$variant => $num),* }
            }

            /// A value by its number or its name, as the kernel accepts both.
            pub fn lookup(raw: &str) -> Option<Self> {
                let raw = raw.trim();
                if let Ok(n) = raw.parse::<u64>() {
                    return Self::TABLE.iter().find(|t| t.1 == n).map(|t| t.2);
                }
                Self::TABLE.iter().find(|t| t.0 == raw).map(|t| t.2)
            }

            /// Every value as `name (number)`, for error messages.
            pub fn names() -> String {
                Self::TABLE.iter().map(|t| format!("{} ({})", t.0, t.1)).collect::<Vec<_>>().join(", ")
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result { f.write_str(self.name()) }
        }

        impl $crate::named::__serde::Serialize for $name {
            fn serialize<S: $crate::named::__serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> $crate::named::__serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::named::__serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as $crate::named::__serde::Deserialize>::deserialize(d)?;
                Self::TABLE.iter().find(|t| t.0 == s).map(|t| t.2)
                    .ok_or_else(|| <D::Error as $crate::named::__serde::de::Error>::custom(
                        format!("unknown {} {s:?}", stringify!($name))))
            }
        }
    };
}

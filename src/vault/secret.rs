//! [`SecretValue`]: a secret read from Vault, in a type that cannot be printed by mistake.

use std::fmt;
use zeroize::Zeroizing;

/// What Debug and Display print instead of a secret value.
pub const REDACTED: &str = "<redacted>";

/// One secret value. Debug and Display print [`REDACTED`]; there is no `Serialize`, so
/// a value cannot slip into JSON output, a release record or a log line by derive. The
/// only way to the text is [`SecretValue::expose`], so that a reviewer finds every place
/// a value leaves this type by searching for it. The memory is
/// wiped when the value is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    /// The value, registered with the process-wide scrubber
    /// ([`crate::redact::register`]): from here on no string flotilla writes (stdout,
    /// stderr, logs, records' descriptions) holds it, in any form.
    pub fn new(value: String) -> Self {
        crate::redact::register(&value);
        SecretValue(Zeroizing::new(value))
    }

    /// The secret text. Only for code that must hand it on (a chart's values, a
    /// Kubernetes Secret); never for formatting into messages.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let value = SecretValue::new("hunter2-plain".to_string());
        let debug = format!("{value:?} {value:#?} {:?}", Some(&value));
        let display = format!("{value} {value:>20}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!display.contains("hunter2"), "{display}");
        assert!(debug.contains(REDACTED));
        assert_eq!(value.expose(), "hunter2-plain");
    }
}

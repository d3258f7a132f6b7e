//! Names: what Kubernetes accepts as a name, what a shell accepts as a variable, and
//! the name a typo was likely meant to be.

/// Why `name` is not a DNS-1123 label (lower-case letters, digits, `-`; at most `max`).
pub fn dns_label_problem(name: &str, max: usize) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_string());
    }
    if name.len() > max {
        return Some(format!(
            "{name:?} is {} characters long; at most {max} are allowed",
            name.len()
        ));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if !name.chars().all(allowed) || name.starts_with('-') || name.ends_with('-') {
        return Some(format!(
            "{name:?} is not a DNS-1123 label: use lower-case letters, digits and '-', starting and ending with a letter or digit"
        ));
    }
    None
}

/// Why `name` is not a DNS-1123 subdomain (labels joined by `.`, at most 253): the rule
/// for Kubernetes object names such as a Deployment's.
pub fn dns_subdomain_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_string());
    }
    if name.len() > 253 {
        return Some(format!(
            "{name:?} is {} characters long; at most 253 are allowed",
            name.len()
        ));
    }
    if name
        .split('.')
        .any(|label| dns_label_problem(label, 63).is_some())
    {
        return Some(format!(
            "{name:?} is not a valid object name (DNS-1123 subdomain): use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
        ));
    }
    None
}

/// Letters, digits and `_`, not starting with a digit.
pub(super) fn is_env_var_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `"a", "b"`, or `none`.
pub(super) fn quoted_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let list: Vec<String> = items.into_iter().map(|s| format!("{s:?}")).collect();
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    }
}

/// The known name closest to `name` when it is a likely typo (edit distance at most 2).
pub(crate) fn nearest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| (distance(name, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert_eq!(dns_label_problem("app1-web", 63), None);
        assert_eq!(dns_label_problem("a", 63), None);
        for bad in ["App", "a_b", "-a", "a-", "a.b"] {
            assert_eq!(
                dns_label_problem(bad, 63),
                Some(format!("{bad:?} is not a DNS-1123 label: use lower-case letters, digits and '-', starting and ending with a letter or digit")),
            );
        }
        assert_eq!(
            dns_label_problem("", 63).as_deref(),
            Some("must not be empty")
        );
        let long = "a".repeat(54);
        assert_eq!(
            dns_label_problem(&long, 53),
            Some(format!(
                "{long:?} is 54 characters long; at most 53 are allowed"
            ))
        );
    }

    #[test]
    fn dns_subdomains() {
        assert_eq!(dns_subdomain_problem("app1-web"), None);
        assert_eq!(dns_subdomain_problem("web.app1"), None);
        for bad in ["Web", "a..b", ".a", "a_b"] {
            assert_eq!(
                dns_subdomain_problem(bad),
                Some(format!("{bad:?} is not a valid object name (DNS-1123 subdomain): use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit")),
            );
        }
        assert_eq!(
            dns_subdomain_problem("").as_deref(),
            Some("must not be empty")
        );
        let long = format!("{}.{}", "a".repeat(63), "b".repeat(190));
        assert!(dns_subdomain_problem(&long)
            .is_some_and(|m| m.ends_with("is 254 characters long; at most 253 are allowed")));
    }

    #[test]
    fn environment_variable_names() {
        for good in ["SLACK_URL", "_x", "a1"] {
            assert!(is_env_var_name(good), "{good:?}");
        }
        for bad in ["", "1A", "A-B", "A B", "A.B"] {
            assert!(!is_env_var_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn quoted_lists() {
        assert_eq!(quoted_list(["a", "b"]), "\"a\", \"b\"");
        assert_eq!(quoted_list([]), "none");
    }

    #[test]
    fn nearest_suggests_only_likely_typos() {
        let known = ["prod-europe-west1", "prod-paris-dc1", "default"];
        assert_eq!(
            nearest("prod-europe-wset1", known.iter().copied()),
            Some("prod-europe-west1")
        );
        assert_eq!(nearest("defualt", known.iter().copied()), Some("default"));
        assert_eq!(nearest("staging-us", known.iter().copied()), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}

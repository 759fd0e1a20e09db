//! CloudFront's wildcards: `*` matches any run of characters (`/` included, possibly
//! none) and `?` exactly one. Used for policy Resources and for path patterns.

/// Whether `text` matches `pattern` (`*` and `?` wildcards, everything else literal).
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    // Greedy matching with one backtrack point: linear in practice and never exponential,
    // whatever the number of stars (a policy arrives from the request, so it is untrusted).
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == b'?' && is_char_start(t[ti]) || p[pi] == t[ti]) {
            if p[pi] == b'?' {
                ti += char_len(t[ti]);
            } else {
                ti += 1;
            }
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            let next = st + char_len(t[st]);
            star = Some((sp, next));
            ti = next;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

fn is_char_start(b: u8) -> bool {
    b & 0xC0 != 0x80
}

fn char_len(b: u8) -> usize {
    match b {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard_match;

    #[track_caller]
    fn case(pattern: &str, text: &str, expected: bool) {
        assert_eq!(wildcard_match(pattern, text), expected, "{pattern:?} vs {text:?}");
    }

    #[test]
    fn stars_and_question_marks_follow_cloudfront() {
        case("https://d.net/a.jpg", "https://d.net/a.jpg", true);
        case("https://d.net/a.jpg", "https://d.net/a.jpgx", false);
        case("https://d.net/*", "https://d.net/", true);
        case("https://d.net/*", "https://d.net/x/y/z.jpg?q=1", true);
        case(
            "https://d.net/*private/galleries/g1/*",
            "https://d.net/private/galleries/g1/a.jpg",
            true,
        );
        case(
            "https://d.net/*private/galleries/g1/*",
            "https://d.net/300x300/private/galleries/g1/a.jpg",
            true,
        );
        case(
            "https://d.net/*private/galleries/g1/*",
            "https://d.net/private/galleries/g2/a.jpg",
            false,
        );
        case("https://d.net/?.jpg", "https://d.net/a.jpg", true);
        case("https://d.net/?.jpg", "https://d.net/ab.jpg", false);
        case("https://d.net/?.jpg", "https://d.net/é.jpg", true);
        case("*", "", true);
        case("?", "", false);
        case("a*b*c", "abc", true);
        case("a*b*c", "aXbYc", true);
        case("a*b*c", "aXbY", false);
        case("private/*", "private/x.jpg", true);
        case("private/*", "300x300/private/x.jpg", false);
    }

    #[test]
    fn many_stars_do_not_take_exponential_time() {
        let pattern = "*a".repeat(200) + "b";
        let text = "a".repeat(5_000);
        assert!(!wildcard_match(&pattern, &text));
    }
}

//! Numbers as recognisers write them, spoken or in digits, turned into a digit string, and the
//! checks that tell a real phone or card number from a stray run of digits.

/// The digits a span says, in order: written digits as they are, spoken ones turned into
/// numerals ("four two" → "42", "oh" → "0", "double five" → "55", "twelve thirty four" →
/// "1234", "five hundred" → "500"). Other words and punctuation are skipped.
pub fn spoken_digits(text: &str) -> String {
    let mut out = String::new();
    let mut repeat = 1;
    let mut pending_tens: Option<u32> = None;
    let words = text
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '.' | '-' | '(' | ')' | '/' | '+'))
        .filter(|w| !w.is_empty());
    for raw in words {
        let word = raw.to_lowercase();
        let w = word.as_str();
        if w.chars().all(|c| c.is_ascii_digit()) {
            flush_tens(&mut out, &mut pending_tens);
            for _ in 0..repeat {
                out.push_str(w);
            }
            repeat = 1;
            continue;
        }
        match w {
            "double" => {
                flush_tens(&mut out, &mut pending_tens);
                repeat = 2;
                continue;
            }
            "triple" => {
                flush_tens(&mut out, &mut pending_tens);
                repeat = 3;
                continue;
            }
            "hundred" => {
                flush_tens(&mut out, &mut pending_tens);
                out.push_str("00");
                continue;
            }
            "thousand" => {
                flush_tens(&mut out, &mut pending_tens);
                out.push_str("000");
                continue;
            }
            _ => {}
        }
        if let Some(d) = unit(w) {
            match pending_tens.take() {
                Some(t) if d > 0 => out.push_str(&format!("{t}{d}")),
                Some(t) => {
                    out.push_str(&format!("{t}0"));
                    push_repeated(&mut out, &d.to_string(), repeat);
                }
                None => push_repeated(&mut out, &d.to_string(), repeat),
            }
            repeat = 1;
        } else if let Some(n) = teen(w) {
            flush_tens(&mut out, &mut pending_tens);
            push_repeated(&mut out, &n.to_string(), repeat);
            repeat = 1;
        } else if let Some(t) = tens(w) {
            flush_tens(&mut out, &mut pending_tens);
            pending_tens = Some(t);
            repeat = 1;
        }
    }
    flush_tens(&mut out, &mut pending_tens);
    out
}

fn push_repeated(out: &mut String, s: &str, times: usize) {
    for _ in 0..times {
        out.push_str(s);
    }
}

fn flush_tens(out: &mut String, pending: &mut Option<u32>) {
    if let Some(t) = pending.take() {
        out.push_str(&format!("{t}0"));
    }
}

fn unit(w: &str) -> Option<u32> {
    Some(match w {
        "zero" | "oh" | "o" | "nought" => 0,
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        _ => return None,
    })
}

fn teen(w: &str) -> Option<u32> {
    Some(match w {
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "thirteen" => 13,
        "fourteen" => 14,
        "fifteen" => 15,
        "sixteen" => 16,
        "seventeen" => 17,
        "eighteen" => 18,
        "nineteen" => 19,
        _ => return None,
    })
}

fn tens(w: &str) -> Option<u32> {
    Some(match w {
        "twenty" => 2,
        "thirty" => 3,
        "forty" => 4,
        "fifty" => 5,
        "sixty" => 6,
        "seventy" => 7,
        "eighty" => 8,
        "ninety" => 9,
        _ => return None,
    })
}

/// The Luhn checksum that every payment card number satisfies.
pub(crate) fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.chars().rev().enumerate() {
        let Some(mut d) = c.to_digit(10) else {
            return false;
        };
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum % 10 == 0
}

/// Whether a span has the shape of an e-mail address, written ("a.b@c.com") or spoken
/// ("a b at c dot com").
pub(crate) fn email_shaped(text: &str) -> bool {
    let lower = text.to_lowercase();
    if let Some((user, domain)) = lower.split_once('@') {
        return !user.trim().is_empty() && domain.contains('.');
    }
    let words: Vec<&str> = lower.split_whitespace().collect();
    match words.iter().position(|w| *w == "at") {
        Some(at) => at > 0 && words[at + 1..].contains(&"dot"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoken_numbers_become_digits() {
        assert_eq!(spoken_digits("four two four two"), "4242");
        assert_eq!(spoken_digits("double five oh one"), "5501");
        assert_eq!(spoken_digits("triple seven uh eight"), "7778");
        assert_eq!(spoken_digits("twelve thirty four"), "1234");
        assert_eq!(spoken_digits("forty forty two"), "4042");
        assert_eq!(spoken_digits("five hundred"), "500");
        assert_eq!(spoken_digits("(555) 123-4567"), "5551234567");
        assert_eq!(spoken_digits("Four Two, 4-2"), "4242");
        assert_eq!(spoken_digits("no digits here"), "");
    }

    #[test]
    fn luhn_accepts_card_numbers_only() {
        assert!(luhn("4242424242424242"));
        assert!(luhn("378282246310005"));
        assert!(!luhn("4242424242424241"));
        assert!(!luhn(""));
        assert!(!luhn("42a2"));
    }

    #[test]
    fn email_shapes() {
        assert!(email_shaped("j.fernandez@protonmail.com"));
        assert!(email_shaped("j fernandez at protonmail dot com"));
        assert!(!email_shaped("at the office"));
        assert!(!email_shaped("john smith"));
    }
}

//! Card numbers and obvious secrets in free text (`EVENT-SCHEMA.md` §1; PCI DSS v4.0.1 3.3.1, 3.5.1):
//! finding them ([`find_sensitive`]) and masking them ([`mask_sensitive`]).
//!
//! Hand-written scanners, linear in the text (no regex). What counts as sensitive:
//! - a card number: a run of 13 to 19 digits, optionally separated by single spaces or dashes, that
//!   passes the Luhn check. A longer run (a card number followed by more digit groups) is searched
//!   for group-aligned card numbers inside it; a run without separators is taken whole.
//! - a secret: `password`, `passwd`, `pwd`, `secret`, `api_key`, `apikey`, `token`, `access_token`
//!   (any case, optionally quoted) followed by `=` or `:` (optionally spaced) and a non-empty value;
//!   `Bearer <token68>` where the token has 8 or more characters and contains a digit or is at
//!   least 20 characters long (so that "Bearer authentication" is not a secret); and PEM private
//!   key blocks, `-----BEGIN ... PRIVATE KEY-----` through the matching `-----END ...-----` line.
//!
//! Masking keeps the last four digits of a card number and its separators; a secret's value (or a
//! whole private key block) becomes [`REDACTED`]. Masking is idempotent: masked text contains
//! nothing sensitive.

use std::ops::Range;

/// What a secret's value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Card numbers have 13 to 19 digits (ISO/IEC 7812-1).
const CARD_DIGITS: Range<usize> = 13..20;

/// Keys that introduce a secret value, lowercase.
const SECRET_KEYS: &[&[u8]] =
    &[b"access_token", b"api_key", b"apikey", b"password", b"passwd", b"pwd", b"secret", b"token"];

/// A bearer token of fewer characters is not taken for a secret.
const MIN_BEARER_TOKEN: usize = 8;
/// A bearer token without a digit must be at least this long to count.
const MIN_BEARER_TOKEN_WITHOUT_DIGIT: usize = 20;

/// The kinds of sensitive text, ordered as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SensitiveKind {
    CardNumber,
    Secret,
}

impl SensitiveKind {
    /// The validation rule that rejects this kind (`card_number`, `secret`).
    pub fn as_str(self) -> &'static str {
        match self {
            SensitiveKind::CardNumber => "card_number",
            SensitiveKind::Secret => "secret",
        }
    }
}

/// One sensitive run of a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SensitiveRun {
    pub kind: SensitiveKind,
    /// The bytes that masking replaces: a card number with its inner separators, a secret's value,
    /// or a whole private key block. Always on `char` boundaries.
    pub range: Range<usize>,
}

/// Every sensitive run in `text`, in order, not overlapping.
pub fn find_sensitive(text: &str) -> Vec<SensitiveRun> {
    let mut runs = find_secrets(text.as_bytes());
    let n_secrets = runs.len();
    // Both lists are sorted and without overlaps: walk the secrets along with the cards.
    let mut next_secret = 0;
    for card in find_card_numbers(text.as_bytes()) {
        while next_secret < n_secrets && runs[next_secret].range.end <= card.start {
            next_secret += 1;
        }
        let inside_secret = next_secret < n_secrets && runs[next_secret].range.start < card.end;
        if !inside_secret {
            runs.push(SensitiveRun { kind: SensitiveKind::CardNumber, range: card });
        }
    }
    runs.sort_by_key(|run| run.range.start);
    runs
}

/// `text` with every sensitive run masked, and the kinds found (sorted, without repeats; empty
/// when `text` is returned unchanged).
pub fn mask_sensitive(text: &str) -> (String, Vec<SensitiveKind>) {
    let runs = find_sensitive(text);
    if runs.is_empty() {
        return (text.to_owned(), Vec::new());
    }
    let mut masked = String::with_capacity(text.len());
    let mut copied = 0;
    for run in &runs {
        masked.push_str(&text[copied..run.range.start]);
        match run.kind {
            SensitiveKind::CardNumber => masked.push_str(&mask_card_number(&text[run.range.clone()])),
            SensitiveKind::Secret => masked.push_str(REDACTED),
        }
        copied = run.range.end;
    }
    masked.push_str(&text[copied..]);
    let mut kinds: Vec<SensitiveKind> = runs.iter().map(|run| run.kind).collect();
    kinds.sort();
    kinds.dedup();
    (masked, kinds)
}

/// Whether ASCII `digits` pass the Luhn (mod 10) check; false when empty or not all digits.
pub fn luhn_valid(digits: &[u8]) -> bool {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, digit)| {
            let value = u32::from(digit - b'0');
            match position % 2 {
                0 => value,
                _ if value * 2 > 9 => value * 2 - 9,
                _ => value * 2,
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// All digits but the last four become `*`; separators stay.
fn mask_card_number(run: &str) -> String {
    let n_digits = run.bytes().filter(u8::is_ascii_digit).count();
    let mut seen = 0;
    run.chars()
        .map(|c| {
            if !c.is_ascii_digit() {
                return c;
            }
            seen += 1;
            if seen <= n_digits.saturating_sub(4) { '*' } else { c }
        })
        .collect()
}

// ---- card numbers ----

/// Byte ranges of Luhn-valid card numbers.
fn find_card_numbers(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut cards = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        if !bytes[position].is_ascii_digit() {
            position += 1;
            continue;
        }
        let groups = digit_groups(bytes, position);
        position = groups.last().map_or(position + 1, |last| last.end);
        cards_in_run(bytes, &groups, &mut cards);
    }
    cards
}

/// The digit groups of the maximal run starting at `start`: digits, separated by one space or dash.
fn digit_groups(bytes: &[u8], start: usize) -> Vec<Range<usize>> {
    let mut groups = Vec::new();
    let mut group_start = start;
    loop {
        let mut end = group_start;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
        groups.push(group_start..end);
        let separated = matches!(bytes.get(end), Some(b' ' | b'-'));
        if separated && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
            group_start = end + 1;
        } else {
            return groups;
        }
    }
}

/// Card numbers made of whole consecutive groups of one run, longest first, left to right.
fn cards_in_run(bytes: &[u8], groups: &[Range<usize>], cards: &mut Vec<Range<usize>>) {
    let mut first = 0;
    while first < groups.len() {
        match card_starting_at(bytes, &groups[first..]) {
            Some(n_groups) => {
                cards.push(groups[first].start..groups[first + n_groups - 1].end);
                first += n_groups;
            }
            None => first += 1,
        }
    }
}

/// How many of `groups` (from the first) form the longest Luhn-valid card number, if any do.
fn card_starting_at(bytes: &[u8], groups: &[Range<usize>]) -> Option<usize> {
    let mut digits = Vec::with_capacity(CARD_DIGITS.end);
    let mut candidates = Vec::new();
    for (index, group) in groups.iter().enumerate() {
        digits.extend_from_slice(&bytes[group.clone()]);
        if digits.len() >= CARD_DIGITS.end {
            break;
        }
        if CARD_DIGITS.contains(&digits.len()) {
            candidates.push((index + 1, digits.clone()));
        }
    }
    candidates.into_iter().rev().find(|(_, digits)| luhn_valid(digits)).map(|(n_groups, _)| n_groups)
}

// ---- secrets ----

/// Secret runs, left to right.
fn find_secrets(bytes: &[u8]) -> Vec<SensitiveRun> {
    let mut runs = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let found = match bytes[position].to_ascii_lowercase() {
            b'-' => private_key_block(bytes, position),
            b'b' => bearer_token(bytes, position),
            b'a' | b'p' | b's' | b't' => key_value(bytes, position),
            _ => None,
        };
        match found {
            Some(range) => {
                position = range.end.max(position + 1);
                runs.push(SensitiveRun { kind: SensitiveKind::Secret, range });
            }
            None => position += 1,
        }
    }
    runs
}

fn starts_with_ignore_case(bytes: &[u8], at: usize, prefix: &[u8]) -> bool {
    bytes.get(at..at + prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn find_from(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes.get(from..)?.windows(needle.len()).position(|window| window == needle).map(|at| from + at)
}

/// `-----BEGIN <label> PRIVATE KEY[ BLOCK]-----` up to the end of its `-----END ...-----` line
/// (or of the text when it has none).
fn private_key_block(bytes: &[u8], start: usize) -> Option<Range<usize>> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const END: &[u8] = b"-----END ";
    const DASHES: &[u8] = b"-----";
    if !bytes[start..].starts_with(BEGIN) {
        return None;
    }
    let label_end = find_from(bytes, start + BEGIN.len(), DASHES)?;
    let label = &bytes[start + BEGIN.len()..label_end];
    if label.contains(&b'\n') || find_from(label, 0, b"PRIVATE KEY").is_none() {
        return None;
    }
    let header_end = label_end + DASHES.len();
    let block_end = find_from(bytes, header_end, END)
        .and_then(|footer| find_from(bytes, footer + END.len(), DASHES))
        .map_or(bytes.len(), |dashes| dashes + DASHES.len());
    Some(start..block_end)
}

fn is_token68(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

/// The token of `Bearer <token68>` (RFC 6750 §2.1), `bearer` in any case at a word start.
fn bearer_token(bytes: &[u8], start: usize) -> Option<Range<usize>> {
    const BEARER: &[u8] = b"bearer";
    let at_word_start = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
    if !at_word_start || !starts_with_ignore_case(bytes, start, BEARER) {
        return None;
    }
    let token_start = skip_spaces(bytes, start + BEARER.len());
    if token_start == start + BEARER.len() {
        return None;
    }
    let body_end = skip_while(bytes, token_start, is_token68);
    let body = &bytes[token_start..body_end];
    let token_end = skip_while(bytes, body_end, |byte| byte == b'=');
    let long_enough = body.len() >= MIN_BEARER_TOKEN_WITHOUT_DIGIT
        || (body.len() >= MIN_BEARER_TOKEN && body.iter().any(u8::is_ascii_digit));
    long_enough.then_some(token_start..token_end)
}

/// The value of `<secret key>["'] <=|:> ["']<value>` when a secret key starts at `start`.
fn key_value(bytes: &[u8], start: usize) -> Option<Range<usize>> {
    let key = SECRET_KEYS.iter().find(|key| starts_with_ignore_case(bytes, start, key))?;
    let mut position = skip_quote(bytes, start + key.len()).unwrap_or(start + key.len());
    position = skip_spaces(bytes, position);
    if !matches!(bytes.get(position), Some(b'=' | b':')) {
        return None;
    }
    position = skip_spaces(bytes, position + 1);
    let value = match skip_quote(bytes, position) {
        Some(value_start) => quoted_value(bytes, value_start, bytes[value_start - 1]),
        None => unquoted_value(bytes, position),
    };
    let text = &bytes[value.clone()];
    let already_masked = text == REDACTED.as_bytes() || text.iter().all(|&byte| byte == b'*');
    (!text.is_empty() && !already_masked).then_some(value)
}

/// A value up to its closing `quote` (an escaped `\"` closes it too), or to the end of the text.
fn quoted_value(bytes: &[u8], start: usize, quote: u8) -> Range<usize> {
    let close = bytes[start..].iter().position(|&byte| byte == quote).map_or(bytes.len(), |at| start + at);
    let end = if close > start && bytes[close - 1] == b'\\' { close - 1 } else { close };
    start..end
}

/// An unquoted value: up to whitespace, a quote or a delimiter.
fn unquoted_value(bytes: &[u8], start: usize) -> Range<usize> {
    let end =
        skip_while(bytes, start, |byte| !byte.is_ascii_whitespace() && !b"\"'`,;&<>()[]{}\\".contains(&byte));
    start..end
}

/// After an optional backslash and a quote (`"`, `'`) at `position`, if there is one.
fn skip_quote(bytes: &[u8], position: usize) -> Option<usize> {
    let position = if bytes.get(position) == Some(&b'\\') { position + 1 } else { position };
    matches!(bytes.get(position), Some(b'"' | b'\'')).then_some(position + 1)
}

fn skip_spaces(bytes: &[u8], position: usize) -> usize {
    skip_while(bytes, position, |byte| byte == b' ' || byte == b'\t')
}

fn skip_while(bytes: &[u8], mut position: usize, keep: impl Fn(u8) -> bool) -> usize {
    while position < bytes.len() && keep(bytes[position]) {
        position += 1;
    }
    position
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` masked, and the kinds found, as `"masked | card_number secret"`.
    fn check(text: &str, expect: &str) {
        let (masked, kinds) = mask_sensitive(text);
        let kinds: Vec<&str> = kinds.iter().map(|kind| kind.as_str()).collect();
        let actual = format!("{masked} | {}", kinds.join(" "));
        assert_eq!(actual.trim_end(), expect, "input: {text:?}");
        let (again, kinds_again) = mask_sensitive(&masked);
        assert_eq!((again.as_str(), kinds_again.len()), (masked.as_str(), 0), "masking is idempotent");
    }

    #[test]
    fn luhn_known_answers() {
        for valid in ["4111111111111111", "378282246310005", "5555555555554444", "79927398713", "0"] {
            assert!(luhn_valid(valid.as_bytes()), "{valid}");
        }
        // 2026112612345678: Luhn sum is 61.
        for invalid in ["4111111111111112", "2026112612345678", "79927398710", "", "4111 1111"] {
            assert!(!luhn_valid(invalid.as_bytes()), "{invalid}");
        }
    }

    #[test]
    fn card_numbers_are_found_and_masked() {
        check("card 4111 1111 1111 1111 declined", "card **** **** **** 1111 declined | card_number");
        check("card 4111-1111-1111-1111.", "card ****-****-****-1111. | card_number");
        check("amex 378282246310005", "amex ***********0005 | card_number");
        check("x4111111111111111y", "x************1111y | card_number");
        check(
            "two: 4111111111111111, 5555555555554444",
            "two: ************1111, ************4444 | card_number",
        );
        // A card number followed by more digit groups is still found, group-aligned.
        check("paid 4111 1111 1111 1111 2026 ok", "paid **** **** **** 1111 2026 ok | card_number");
    }

    #[test]
    fn other_digit_runs_are_not_card_numbers() {
        check("not luhn 4111111111111112", "not luhn 4111111111111112 |");
        check("twelve 411111111111", "twelve 411111111111 |");
        check("order 2026112612345678", "order 2026112612345678 |");
        // 20 digits without separators: one run, too long, never split.
        check("id 41111111111111110000", "id 41111111111111110000 |");
        // Double spaces and other separators end a run.
        check("4111  1111 1111 1111", "4111  1111 1111 1111 |");
        check("4111/1111/1111/1111", "4111/1111/1111/1111 |");
        check("2026-11-26T10:53:25Z", "2026-11-26T10:53:25Z |");
    }

    #[test]
    fn secrets_are_found_and_masked() {
        check("password=hunter2", "password=[REDACTED] | secret");
        check("PassWord: hunter2 retry", "PassWord: [REDACTED] retry | secret");
        check(r#"{"api_key": "ab-12"}"#, r#"{"api_key": "[REDACTED]"} | secret"#);
        check(r#"{\"token\":\"ab c\"}"#, r#"{\"token\":\"[REDACTED]\"} | secret"#);
        check("url?access_token=abc&x=1", "url?access_token=[REDACTED]&x=1 | secret");
        check("pwd = 'x y'; secret:s3", "pwd = '[REDACTED]'; secret:[REDACTED] | secret");
        check("APIKEY=k passwd=p", "APIKEY=[REDACTED] passwd=[REDACTED] | secret");
        check(
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x-_=",
            "Authorization: Bearer [REDACTED] | secret",
        );
        check("bearer abcdefghijklmnopqrstuvwxyz", "bearer [REDACTED] | secret");
    }

    #[test]
    fn private_key_blocks_are_masked_whole() {
        check(
            "key -----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY----- end",
            "key [REDACTED] end | secret",
        );
        check("-----BEGIN PRIVATE KEY-----\nMIIB", "[REDACTED] | secret");
        check("-----BEGIN PUBLIC KEY-----\nMIIB", "-----BEGIN PUBLIC KEY-----\nMIIB |");
    }

    #[test]
    fn words_that_merely_mention_secrets_are_not_secrets() {
        check("password reset requested", "password reset requested |");
        check("password_hint=blue", "password_hint=blue |");
        check("secretary: Ann", "secretary: Ann |");
        check("token=", "token= |");
        check("Bearer authentication failed", "Bearer authentication failed |");
        check("Bearer short1", "Bearer short1 |");
        check("unbearer abcdefgh12345", "unbearer abcdefgh12345 |");
    }

    #[test]
    fn a_card_number_inside_a_secret_is_one_secret() {
        check("token=4111111111111111 ok", "token=[REDACTED] ok | secret");
        check("token=x card 4111111111111111", "token=[REDACTED] card ************1111 | card_number secret");
    }

    #[test]
    fn runs_are_on_char_boundaries() {
        check(
            "пароль password=ключ! 4111 1111 1111 1111€",
            "пароль password=[REDACTED] **** **** **** 1111€ | card_number secret",
        );
        for run in find_sensitive("é password=ü€ é") {
            assert!("é password=ü€ é".is_char_boundary(run.range.start));
        }
    }
}

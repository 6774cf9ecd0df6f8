//! What may appear in logs about callers: with `[log] mask_caller_numbers = true` a caller's
//! number is logged as `138****5678`. Call records and tickets keep the full number (staff
//! need it to call back); logs are read by more people and kept in more places.

/// Mask the middle of a phone number: keep the first 3 and last 4 characters of numbers of
/// 8 or more, the last 2 of shorter ones; everything else becomes `*`. Not a number
/// (`anonymous`) is returned as is.
pub fn mask_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if !chars.iter().any(|c| c.is_ascii_digit()) {
        return number.to_string();
    }
    let n = chars.len();
    let (head, tail) = if n >= 8 { (3, 4) } else { (0, n.min(2)) };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < head || i >= n - tail { *c } else { '*' })
        .collect()
}

/// The caller number as it may be logged under the configured policy.
pub fn caller_for_log(number: &str, mask: bool) -> String {
    if mask {
        mask_number(number)
    } else {
        number.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_masked_in_the_middle() {
        assert_eq!(mask_number("13812345678"), "138****5678");
        assert_eq!(mask_number("+8613812345678"), "+86*******5678");
        assert_eq!(mask_number("12345"), "***45");
        assert_eq!(mask_number("anonymous"), "anonymous");
        assert_eq!(mask_number(""), "");
        assert_eq!(caller_for_log("13812345678", false), "13812345678");
    }
}

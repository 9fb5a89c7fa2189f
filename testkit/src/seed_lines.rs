//! The seeds' example log lines against a real run's: both are compared after removing times and numbers (every
//! run of digits becomes `N`), so what remains is the wording, the level, the process and the thread name.

/// A log line without its values: the leading timestamp dropped, every run of digits replaced by `N`.
pub fn normalize(line: &str) -> String {
    let line = line.trim();
    // `2025-02-17T17:04:16.798 INFO ...`: the line's own time is dropped (a seed may quote it with a prefix).
    let line = match line
        .find(" INFO ")
        .or_else(|| line.find(" WARNING "))
        .or_else(|| line.find(" ERROR "))
    {
        Some(at)
            if line[..at]
                .bytes()
                .all(|b| b.is_ascii_digit() || b"-T:.Z".contains(&b)) =>
        {
            &line[at + 1..]
        }
        _ => line,
    };
    let mut out = String::with_capacity(line.len());
    let mut in_number = false;
    for c in line.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            out.push(c);
            in_number = false;
        }
    }
    out
}

/// The example lines of a seed excerpt (one per line; blank lines and `#` comments skipped) that the run's log
/// does not contain, after [`normalize`].
pub fn missing_lines(examples: &str, log: &str) -> Vec<String> {
    let got: std::collections::HashSet<String> = log.lines().map(normalize).collect();
    examples
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| !got.contains(&normalize(l)))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_numbers_are_removed() {
        assert_eq!(
            normalize("2025-02-17T17:04:17.694 INFO InputProcess::X(alibaba#12341,a#predefined) -> Elapsed time: 0.901 s"),
            "INFO InputProcess::X(alibaba#N,a#predefined) -> Elapsed time: N.N s"
        );
        let missing = missing_lines(
            "# seed\n2025-01-01T00:00:00.000 INFO P::T -> up 1 of 2\n2025-01-01T00:00:00.000 INFO P::T -> gone\n",
            "2026-12-03T11:00:00.123 INFO P::T -> up 10 of 20\n",
        );
        assert_eq!(missing, vec!["2025-01-01T00:00:00.000 INFO P::T -> gone"]);
    }
}

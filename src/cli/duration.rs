//! Durations on the command line (`--duration`, `--ramp-up`, `--timeout`, `--touch-timeout`,
//! `--seconds`): human units as the `humantime` crate reads them (`250ms`, `20s`, `5m`, `1h`,
//! `1h 30m`), or a bare number of seconds (`20`, `0.5`), as before.
use std::time::Duration;

/// `text` as a duration, or a line saying what is accepted.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("{text:?} is not a number of seconds a duration can be"));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{e} (say 250ms, 20s, 5m, 1h, 1h 30m, or a number of seconds)"))
}

#[cfg(test)]
mod tests {
    use super::parse;
    use std::time::Duration;

    #[test]
    fn human_units_and_bare_seconds() {
        for (text, expected) in [
            ("20s", Duration::from_secs(20)),
            ("5m", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
            ("1h 30m", Duration::from_secs(5400)),
            ("250ms", Duration::from_millis(250)),
            ("20", Duration::from_secs(20)),
            ("0.5", Duration::from_millis(500)),
        ] {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
        for bad in ["-1", "5 parsecs", "", "inf"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}

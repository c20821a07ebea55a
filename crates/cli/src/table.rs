//! kubectl-style tables (upper-case headers, columns three spaces apart), as Velero prints them,
//! and Kubernetes' human-readable durations.

pub fn print(
    headers: &[&str],
    rows: &[Vec<String>],
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| -> String {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                s.push_str(&cell);
            } else {
                s.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    writeln!(
        out,
        "{}",
        line(headers.iter().map(|h| h.to_uppercase()).collect())
    )?;
    for row in rows {
        writeln!(out, "{}", line(row.clone()))?;
    }
    Ok(())
}

/// Kubernetes' `ShortHumanDuration`.
pub fn short_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s if s < 86400 * 365 => format!("{}d", s / 86400),
        s => format!("{}y", s / 86400 / 365),
    }
}

/// Velero's `humanReadableTimeFromNow`: `29d`, or `3h ago` for a time past.
pub fn from_now(when: Option<jiff::Timestamp>) -> String {
    let Some(when) = when else {
        return "n/a".into();
    };
    let delta = when.as_second() - jiff::Timestamp::now().as_second();
    if delta >= 0 {
        short_duration(delta)
    } else {
        format!("{} ago", short_duration(-delta))
    }
}

/// How Go prints a `metav1.Time` (`2026-11-21 12:30:00 +0000 UTC`), or `<nil>` when unset.
pub fn time(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> String {
    match t {
        Some(t) => t.0.strftime("%Y-%m-%d %H:%M:%S +0000 UTC").to_string(),
        None => "<nil>".into(),
    }
}

/// Kubernetes' `FormatLabelSelector`: the selector as `kubectl` takes it, or `<none>`.
pub fn selector(
    selector: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> String {
    match selector {
        None => "<none>".into(),
        Some(s) => match velero_filters::selector::Selector::new(s) {
            Ok(sel) if !sel.is_empty() => sel.to_string(),
            Ok(_) => "<none>".into(),
            Err(e) => format!("<invalid: {e}>"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_like_kubectl() {
        let mut out = Vec::new();
        print(
            &["Name", "Status"],
            &[
                vec!["a-long-name".into(), "Completed".into()],
                vec!["b".into(), "New".into()],
            ],
            &mut out,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME          STATUS\na-long-name   Completed\nb             New\n"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(short_duration(59), "59s");
        assert_eq!(short_duration(61), "1m");
        assert_eq!(short_duration(7200), "2h");
        assert_eq!(short_duration(720 * 3600 - 1), "29d");
        assert_eq!(short_duration(-5), "<invalid>");
        assert_eq!(from_now(None), "n/a");
    }
}

//! Where a (re)joining client's replay starts, and what it is told about it.

use shared::{GapReason, Resume};

use crate::store::Bounds;

/// What to replay: the outcome to report and the `seq` to replay after.
pub fn resume_plan(
    epoch: &str,
    position: Option<&(String, u64)>,
    bounds: Bounds,
    on_join: u64,
) -> (Resume, u64) {
    let oldest = bounds.first.saturating_sub(1); // replaying after this sends all that is stored
    let tail = bounds.last.saturating_sub(on_join).max(oldest);
    match position {
        None => (
            Resume::Fresh {
                count: bounds.last - tail,
            },
            tail,
        ),
        Some((e, seq)) if e == epoch && *seq <= bounds.last => {
            if *seq == bounds.last {
                (Resume::Live, *seq)
            } else if *seq >= oldest {
                (
                    Resume::Recovered {
                        count: bounds.last - seq,
                    },
                    *seq,
                )
            } else {
                (
                    Resume::Gap {
                        reason: GapReason::Trimmed,
                        count: bounds.last - oldest,
                    },
                    oldest,
                )
            }
        }
        // Another epoch, or a seq this history never reached: the position means nothing here.
        Some(_) => (
            Resume::Gap {
                reason: GapReason::EpochChanged,
                count: bounds.last - tail,
            },
            tail,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(first: u64, last: u64) -> Bounds {
        Bounds { first, last }
    }

    #[test]
    fn resume_outcomes() {
        let pos = |s: u64| Some(("e".to_owned(), s));
        assert_eq!(
            resume_plan("e", None, b(1, 120), 50),
            (Resume::Fresh { count: 50 }, 70)
        );
        assert_eq!(
            resume_plan("e", None, b(1, 0), 50),
            (Resume::Fresh { count: 0 }, 0)
        );
        assert_eq!(
            resume_plan("e", pos(120).as_ref(), b(1, 120), 50),
            (Resume::Live, 120)
        );
        assert_eq!(
            resume_plan("e", pos(100).as_ref(), b(1, 120), 50),
            (Resume::Recovered { count: 20 }, 100)
        );
        assert_eq!(
            resume_plan("e", pos(100).as_ref(), b(101, 120), 50),
            (Resume::Recovered { count: 20 }, 100)
        );
        assert_eq!(
            resume_plan("e", pos(10).as_ref(), b(101, 120), 50),
            (
                Resume::Gap {
                    reason: GapReason::Trimmed,
                    count: 20
                },
                100
            )
        );
        assert_eq!(
            resume_plan("other", pos(10).as_ref(), b(1, 120), 50),
            (
                Resume::Gap {
                    reason: GapReason::EpochChanged,
                    count: 50
                },
                70
            )
        );
        assert_eq!(
            resume_plan("e", pos(500).as_ref(), b(1, 120), 50),
            (
                Resume::Gap {
                    reason: GapReason::EpochChanged,
                    count: 50
                },
                70
            )
        );
    }
}

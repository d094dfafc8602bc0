//! Injected faults, as every simulator counts them down: the first rule that matches a request
//! and has uses left is taken once, and dropped when it has none left.

/// One injected fault: which requests it matches and how many uses it has left.
pub trait FaultRule: Clone {
    fn matches(&self, method: &str, path: &str) -> bool;
    fn uses_left(&mut self) -> &mut u32;
}

/// Takes one use of the first rule matching `method` and `path`; returns it as it was taken.
pub fn take<F: FaultRule>(faults: &mut Vec<F>, method: &str, path: &str) -> Option<F> {
    let index = faults
        .iter_mut()
        .position(|f| *f.uses_left() > 0 && f.matches(method, path))?;
    let fault = &mut faults[index];
    *fault.uses_left() -= 1;
    let taken = fault.clone();
    if *fault.uses_left() == 0 {
        faults.remove(index);
    }
    Some(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Rule {
        path: &'static str,
        count: u32,
    }

    impl FaultRule for Rule {
        fn matches(&self, _method: &str, path: &str) -> bool {
            path.contains(self.path)
        }

        fn uses_left(&mut self) -> &mut u32 {
            &mut self.count
        }
    }

    #[test]
    fn a_rule_is_taken_as_often_as_it_counts_then_dropped() {
        let mut faults = vec![
            Rule {
                path: "/a",
                count: 2,
            },
            Rule {
                path: "/b",
                count: 1,
            },
        ];
        assert!(take(&mut faults, "GET", "/x").is_none());
        assert_eq!(take(&mut faults, "GET", "/a/1").map(|r| r.path), Some("/a"));
        assert_eq!(take(&mut faults, "GET", "/a/2").map(|r| r.path), Some("/a"));
        assert!(take(&mut faults, "GET", "/a/3").is_none(), "used up");
        assert_eq!(
            faults,
            [Rule {
                path: "/b",
                count: 1
            }]
        );
    }
}

//! A series of latencies and its quantiles (nearest rank), as every bench reports them.

use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `q` quantile (0..=1) by nearest rank; zero for no samples.
    pub fn quantile(&self, q: f64) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        if v.is_empty() {
            return Duration::ZERO;
        }
        let rank = (q * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }

    pub fn p50(&self) -> Duration {
        self.quantile(0.5)
    }

    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    pub fn max(&self) -> Duration {
        self.0.iter().max().copied().unwrap_or_default()
    }

    /// `p50 1.2 ms, p99 3.4 ms, max 5.6 ms over N`.
    pub fn describe(&self) -> String {
        format!(
            "p50 {}, p99 {}, max {} over {}",
            ms(self.p50()),
            ms(self.p99()),
            ms(self.max()),
            self.len()
        )
    }
}

impl FromIterator<Duration> for Latencies {
    fn from_iter<I: IntoIterator<Item = Duration>>(iter: I) -> Self {
        Latencies(iter.into_iter().collect())
    }
}

/// `12.3 ms`.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles_and_max() {
        let l: Latencies = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(l.p50(), Duration::from_millis(50));
        assert_eq!(l.p99(), Duration::from_millis(99));
        assert_eq!(l.max(), Duration::from_millis(100));
        let one: Latencies = [Duration::from_millis(7)].into_iter().collect();
        assert_eq!(
            (one.p50(), one.p99(), one.max()),
            (one.max(), one.max(), one.max())
        );
        assert_eq!(Latencies::default().p99(), Duration::ZERO);
    }
}

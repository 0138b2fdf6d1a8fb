//! Summaries of game scores (pipes passed), shared by the trainer's
//! evaluations and the firmware simulator's report.

/// The mean of `scores` (0 for none).
pub fn mean(scores: &[u32]) -> f64 {
    scores.iter().map(|&s| s as f64).sum::<f64>() / scores.len().max(1) as f64
}

/// The median of `sorted` (ascending): the middle score, or the mean of
/// the two middle ones (0 for none).
pub fn median(sorted: &[u32]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2] as f64,
        n => (sorted[n / 2 - 1] as f64 + sorted[n / 2] as f64) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_median() {
        assert_eq!((mean(&[]), median(&[])), (0.0, 0.0));
        assert_eq!((mean(&[3, 1, 8]), median(&[1, 3, 8])), (4.0, 3.0));
        assert_eq!(median(&[1, 2, 5, 1000]), 3.5);
    }
}

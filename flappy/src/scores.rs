//! Summaries of game scores (pipes passed), shared by the trainer's
//! evaluations and the firmware simulator's report; [`median`] also serves
//! other samples (latencies, study statistics).

/// The mean of `scores` (0 for none).
pub fn mean(scores: &[u32]) -> f64 {
    scores.iter().map(|&s| s as f64).sum::<f64>() / scores.len().max(1) as f64
}

/// The median of `sorted` (ascending): the middle value, or the mean of
/// the two middle ones (0 for none).
pub fn median<T: Copy + Into<f64>>(sorted: &[T]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2].into(),
        n => (sorted[n / 2 - 1].into() + sorted[n / 2].into()) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_median() {
        assert_eq!((mean(&[]), median::<u32>(&[])), (0.0, 0.0));
        assert_eq!((mean(&[3, 1, 8]), median(&[1, 3, 8])), (4.0, 3.0));
        assert_eq!(median(&[1, 2, 5, 1000]), 3.5);
        assert_eq!(median(&[-1.5, 0.25, 7.0]), 0.25);
    }
}

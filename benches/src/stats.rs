//! Small statistics shared by the harnesses.

/// The median of `v`, NaN figures left out (a row without hits has NaN there); NaN when nothing
/// is left. Even counts take the mean of the two middle values.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The element at fraction `f` of `sorted` (ascending): index ⌊len · f⌋, the last one for `f`
/// near 1; `None` when it is empty.
pub fn quantile<T: Copy>(sorted: &[T], f: f64) -> Option<T> {
    sorted.get(((sorted.len() as f64 * f) as usize).min(sorted.len().saturating_sub(1))).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_skip_missing_figures() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![f64::NAN, 5.0]), 5.0);
        assert!(median(vec![f64::NAN]).is_nan());
        assert!(median(Vec::new()).is_nan());
    }

    #[test]
    fn quantiles_round_down_and_stay_inside() {
        let v: Vec<u64> = (1..=1_000).collect();
        assert_eq!(quantile(&v, 0.5), Some(501));
        assert_eq!(quantile(&v, 0.99), Some(991));
        assert_eq!(quantile(&v, 0.999), Some(1_000));
        assert_eq!(quantile(&v, 1.0), Some(1_000));
        assert_eq!(quantile(&v, 0.0), Some(1));
        assert_eq!(quantile(&[7.5], 0.99), Some(7.5));
        assert_eq!(quantile::<u64>(&[], 0.5), None);
    }
}

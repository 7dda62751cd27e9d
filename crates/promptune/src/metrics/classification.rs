//! Classification metrics: accuracy and macro-F1 (as scikit-learn computes them).

/// Fraction of positions where `pred` equals `gold`; 0.0 when both are empty.
///
/// # Panics
/// When `pred` and `gold` differ in length (a caller bug, not a data problem).
pub fn accuracy(pred: &[usize], gold: &[usize]) -> f64 {
    assert_eq!(
        pred.len(),
        gold.len(),
        "accuracy: {} predictions for {} gold labels",
        pred.len(),
        gold.len()
    );
    if gold.is_empty() {
        return 0.0;
    }
    let correct = pred.iter().zip(gold).filter(|(p, g)| p == g).count();
    correct as f64 / gold.len() as f64
}

/// Macro-averaged F1: the unweighted mean of the per-class F1 scores.
///
/// Only classes that occur in `gold` or in `pred` are averaged; a class absent from both is
/// left out rather than counted as 0 (or 1). This is what scikit-learn's
/// `f1_score(gold, pred, average="macro")` computes when `labels` is not given (it infers the
/// classes from the data), so e.g. a dev set lacking a class scores the same here and there. A
/// class that occurs but is never predicted correctly scores 0 (sklearn's `zero_division`
/// default, without the warning). `num_labels` only sizes the counts; labels beyond it are
/// still counted. Returns 0.0 when both slices are empty.
///
/// # Panics
/// When `pred` and `gold` differ in length (a caller bug, not a data problem).
pub fn macro_f1(pred: &[usize], gold: &[usize], num_labels: usize) -> f64 {
    assert_eq!(
        pred.len(),
        gold.len(),
        "macro_f1: {} predictions for {} gold labels",
        pred.len(),
        gold.len()
    );
    let classes = pred
        .iter()
        .chain(gold)
        .map(|&l| l + 1)
        .max()
        .unwrap_or(0)
        .max(num_labels);
    // per class: true positives, predicted count, gold count
    let mut tp = vec![0usize; classes];
    let mut predicted = vec![0usize; classes];
    let mut actual = vec![0usize; classes];
    for (&p, &g) in pred.iter().zip(gold) {
        predicted[p] += 1;
        actual[g] += 1;
        if p == g {
            tp[p] += 1;
        }
    }
    let mut sum = 0.0;
    let mut present = 0usize;
    for c in 0..classes {
        let denominator = predicted[c] + actual[c];
        if denominator == 0 {
            continue;
        }
        present += 1;
        // F1 = 2PR / (P + R) = 2 TP / (2 TP + FP + FN)
        sum += 2.0 * tp[c] as f64 / denominator as f64;
    }
    if present == 0 {
        0.0
    } else {
        sum / present as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn accuracy_cases() {
        // sklearn docs: accuracy_score([0, 1, 2, 3], [0, 2, 1, 3]) == 0.5
        assert!(close(accuracy(&[0, 2, 1, 3], &[0, 1, 2, 3]), 0.5));
        assert!(close(accuracy(&[1, 1, 1], &[1, 1, 1]), 1.0));
        assert!(close(accuracy(&[0, 0, 0], &[1, 1, 0]), 1.0 / 3.0));
        assert_eq!(accuracy(&[], &[]), 0.0);
    }

    #[test]
    fn macro_f1_sklearn_cases() {
        // sklearn docs: f1_score([0, 1, 2, 0, 1, 2], [0, 2, 1, 0, 0, 1], average="macro")
        // == 0.26666...: class 0 has F1 0.8, classes 1 and 2 have 0.
        let gold = [0, 1, 2, 0, 1, 2];
        let pred = [0, 2, 1, 0, 0, 1];
        assert!(close(macro_f1(&pred, &gold, 3), 0.8 / 3.0));
        // all one class predicted: class 0 P = 1/2, R = 1 -> F1 2/3; class 1 -> 0
        assert!(close(macro_f1(&[0, 0, 0, 0], &[0, 0, 1, 1], 2), 1.0 / 3.0));
        assert!(close(macro_f1(&[0, 1, 1, 0], &[0, 1, 1, 0], 2), 1.0));
        // hand computed: class 0 TP 2 FP 1 FN 1 -> 4/6; class 1 TP 1 FP 1 FN 1 -> 2/4
        assert!(close(
            macro_f1(&[0, 0, 1, 0, 1], &[0, 0, 0, 1, 1], 2),
            (4.0 / 6.0 + 0.5) / 2.0
        ));
        assert_eq!(macro_f1(&[], &[], 2), 0.0);
    }

    #[test]
    fn macro_f1_skips_absent_classes() {
        // class 1 occurs in neither: averaged over classes 0 (F1 0.8) and 2 (F1 2/3), as
        // sklearn's f1_score([0, 0, 2, 2], [0, 0, 2, 0], average="macro") == 0.7333...
        let gold = [0, 0, 2, 2];
        let pred = [0, 0, 2, 0];
        let expected = (0.8 + 2.0 / 3.0) / 2.0;
        assert!(close(macro_f1(&pred, &gold, 3), expected));
        assert!(close(macro_f1(&pred, &gold, 10), expected));
        // a class only predicted counts (as 0)
        assert!(close(macro_f1(&[0, 1], &[0, 0], 2), (2.0 / 3.0) / 2.0));
        // labels beyond num_labels are still counted
        assert!(close(macro_f1(&[0, 3], &[0, 3], 2), 1.0));
    }
}

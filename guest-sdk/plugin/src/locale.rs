//! Locale-aware strings for the root/English locale, as the reference's ICU gives them:
//! collation (`localeCompare`, `Intl.Collator`) from ICU4X's collator, and number formatting
//! (`toLocaleString`, `Intl.NumberFormat`) from ICU4X's decimal formatter, both with their baked
//! data. The prelude installs the JavaScript side (`../prelude/prelude.js`, `installLocale`).

use fixed_decimal::{Decimal, FloatPrecision, SignedRoundingMode, UnsignedRoundingMode};
use icu_collator::options::{CaseLevel, CollatorOptions, Strength};
use icu_collator::preferences::CollationNumericOrdering;
use icu_collator::{Collator, CollatorBorrowed, CollatorPreferences};
use icu_decimal::options::{DecimalFormatterOptions, GroupingStrategy};
use icu_decimal::{DecimalFormatter, DecimalFormatterPreferences};
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    /// Collators by (numeric, sensitivity): built once, kept for the run.
    static COLLATORS: RefCell<HashMap<(bool, u32), CollatorBorrowed<'static>>> = RefCell::new(HashMap::new());
    static DECIMAL: RefCell<Option<[DecimalFormatter; 2]>> = const { RefCell::new(None) };
}

/// `sensitivity`: 0 base, 1 accent, 2 case, 3 variant (the default).
fn collator(numeric: bool, sensitivity: u32) -> CollatorBorrowed<'static> {
    let mut prefs = CollatorPreferences::default();
    prefs.numeric_ordering =
        Some(if numeric { CollationNumericOrdering::True } else { CollationNumericOrdering::False });
    let mut options = CollatorOptions::default();
    options.strength = Some(match sensitivity {
        0 | 2 => Strength::Primary,
        1 => Strength::Secondary,
        _ => Strength::Tertiary,
    });
    if sensitivity == 2 {
        options.case_level = Some(CaseLevel::On);
    }
    Collator::try_new(prefs, options).expect("the collator's data is compiled in")
}

/// -1, 0 or 1, as `localeCompare` returns.
pub fn compare(a: &str, b: &str, numeric: bool, sensitivity: u32) -> i32 {
    COLLATORS.with(|c| {
        let mut c = c.borrow_mut();
        let collator = c.entry((numeric, sensitivity)).or_insert_with(|| collator(numeric, sensitivity));
        collator.compare(a, b) as i32
    })
}

/// `x` with between `min` and `max` fraction digits (rounded half away from zero, as
/// `Intl.NumberFormat` does), with or without grouping separators.
pub fn format_number(x: f64, min: u32, max: u32, grouping: bool) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "∞".into() } else { "-∞".into() };
    }
    let Ok(mut d) = Decimal::try_from_f64(x, FloatPrecision::RoundTrip) else {
        return x.to_string();
    };
    let (min, max) = (min.min(100) as i16, max.min(100).max(min.min(100)) as i16);
    d.round_with_mode(-max, SignedRoundingMode::Unsigned(UnsignedRoundingMode::HalfExpand));
    d.absolute.trim_end();
    d.absolute.pad_end(-min);
    DECIMAL.with(|f| {
        let mut f = f.borrow_mut();
        let formatters = f.get_or_insert_with(|| {
            let make = |g| {
                let mut o = DecimalFormatterOptions::default();
                o.grouping_strategy = Some(g);
                DecimalFormatter::try_new(DecimalFormatterPreferences::default(), o)
                    .expect("the decimal formatter's data is compiled in")
            };
            [make(GroupingStrategy::Never), make(GroupingStrategy::Auto)]
        });
        formatters[usize::from(grouping)].format(&d).to_string()
    })
}

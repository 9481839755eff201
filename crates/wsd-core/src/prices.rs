//! The price book: vendors' list prices per model, and the cost of one request's tokens in
//! integer micro-dollars. A price no source confirmed is unknown, never zero: the cost of
//! tokens of a class whose price is unknown is unknown.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Micro-dollars (10⁻⁶ USD) per million tokens: `5` USD/Mtok is `5_000_000`.
pub type MicrosPerMillion = u64;

/// The highest price accepted, in USD per million tokens: far above any list price, low
/// enough that no count of tokens a request can report overflows a cost.
pub const MAX_USD_PER_MILLION: f64 = 10_000.0;

/// The token classes of a request, as the ledger counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

impl TokenCounts {
    /// The prompt's length: every token the request sent, cached or not.
    pub fn prompt(&self) -> u64 {
        self.input.saturating_add(self.cache_read).saturating_add(self.cache_write)
    }
}

/// One price per token class; `None` where no source gives one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    pub input: Option<MicrosPerMillion>,
    pub output: Option<MicrosPerMillion>,
    pub cache_read: Option<MicrosPerMillion>,
    pub cache_write: Option<MicrosPerMillion>,
}

/// A model's prices: the base rates, and the rates of prompts longer than a threshold where
/// the vendor charges more for those.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPrice {
    pub base: Rates,
    pub long_prompt: Option<LongPrompt>,
}

/// The rates of a request whose prompt is longer than `above` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LongPrompt {
    pub above: u64,
    pub rates: Rates,
}

/// What one request cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Cost {
    /// In micro-dollars, rounded to the nearest.
    Known { micros: i64 },
    /// No price for the model, or none for a token class the request used.
    Unknown,
}

impl Cost {
    pub fn micros(self) -> Option<i64> {
        match self {
            Cost::Known { micros } => Some(micros),
            Cost::Unknown => None,
        }
    }
}

impl ModelPrice {
    /// The rates that apply to a request with these counts.
    pub fn rates_for(&self, tokens: &TokenCounts) -> &Rates {
        match &self.long_prompt {
            Some(long) if tokens.prompt() > long.above => &long.rates,
            _ => &self.base,
        }
    }

    pub fn cost(&self, tokens: &TokenCounts) -> Cost {
        let rates = self.rates_for(tokens);
        let mut picos: u128 = 0;
        for (count, rate) in [
            (tokens.input, rates.input),
            (tokens.output, rates.output),
            (tokens.cache_read, rates.cache_read),
            (tokens.cache_write, rates.cache_write),
        ] {
            if count == 0 {
                continue;
            }
            let Some(rate) = rate else { return Cost::Unknown };
            picos += u128::from(count) * u128::from(rate);
        }
        // count × (µ$ per 10⁶ tokens) is in 10⁻¹² USD: rounded once, to the nearest µ$.
        let micros = (picos + 500_000) / 1_000_000;
        Cost::Known { micros: i64::try_from(micros).unwrap_or(i64::MAX) }
    }
}

/// Every model's prices, by the model id the provider knows it by (`claude-opus-4-8`,
/// `MiniMax-M2.7`), as the ledger records it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceBook {
    models: BTreeMap<String, ModelPrice>,
}

impl PriceBook {
    pub fn new(models: BTreeMap<String, ModelPrice>) -> Self {
        Self { models }
    }

    pub fn get(&self, model: &str) -> Option<&ModelPrice> {
        self.models.get(model)
    }

    pub fn models(&self) -> impl Iterator<Item = (&str, &ModelPrice)> {
        self.models.iter().map(|(id, price)| (id.as_str(), price))
    }

    /// The cost of a request to `model`: unknown for a model without a price.
    pub fn cost(&self, model: &str, tokens: &TokenCounts) -> Cost {
        self.get(model).map_or(Cost::Unknown, |price| price.cost(tokens))
    }

    /// This book with `overrides` laid over it: a model's given fields replace its own, and
    /// a model it lacks is added.
    pub fn with_overrides(&self, overrides: &BTreeMap<String, ModelPrice>) -> PriceBook {
        let mut models = self.models.clone();
        for (id, over) in overrides {
            let merged = match models.get(id) {
                Some(own) => ModelPrice {
                    base: over.base.or(own.base),
                    long_prompt: match (over.long_prompt, own.long_prompt) {
                        (Some(o), Some(b)) if o.above == b.above => Some(LongPrompt { above: o.above, rates: o.rates.or(b.rates) }),
                        (Some(o), _) => Some(o),
                        (None, b) => b,
                    },
                },
                None => over.clone(),
            };
            models.insert(id.clone(), merged);
        }
        PriceBook { models }
    }
}

impl Rates {
    /// These rates, with `fallback`'s where these have none.
    pub fn or(self, fallback: Rates) -> Rates {
        Rates {
            input: self.input.or(fallback.input),
            output: self.output.or(fallback.output),
            cache_read: self.cache_read.or(fallback.cache_read),
            cache_write: self.cache_write.or(fallback.cache_write),
        }
    }
}

/// Micro-dollars as people read them: `$0.015625`, `-$1.000000`.
pub fn dollars(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    format!("{sign}${}.{:06}", abs / 1_000_000, abs % 1_000_000)
}

/// A model's prices as an operator writes them (the registry's `prices`, `WSD_CONFIG`'s
/// `[prices."<model>"]`): USD per million tokens, a class left out is unknown.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceEntry {
    #[serde(default)]
    pub input: Option<f64>,
    #[serde(default)]
    pub output: Option<f64>,
    #[serde(default)]
    pub cache_read: Option<f64>,
    #[serde(default)]
    pub cache_write: Option<f64>,
    #[serde(default)]
    pub long_prompt: Option<LongPromptEntry>,
}

/// The rates of prompts longer than `above` tokens, as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongPromptEntry {
    pub above: u64,
    #[serde(default)]
    pub input: Option<f64>,
    #[serde(default)]
    pub output: Option<f64>,
    #[serde(default)]
    pub cache_read: Option<f64>,
    #[serde(default)]
    pub cache_write: Option<f64>,
}

fn rates(fields: [(&str, Option<f64>); 4], problems: &mut Vec<String>) -> Rates {
    let mut read = fields.map(|(name, usd)| {
        usd.and_then(|usd| {
            let micros = micros_per_million(usd);
            if micros.is_none() {
                problems.push(format!("{name}: {usd} is not a price in USD per million tokens between 0 and {MAX_USD_PER_MILLION}"));
            }
            micros
        })
    });
    let [input, output, cache_read, cache_write] = std::mem::take(&mut read);
    Rates { input, output, cache_read, cache_write }
}

impl PriceEntry {
    /// The price, or every problem with it (each naming its field).
    pub fn to_price(&self) -> Result<ModelPrice, Vec<String>> {
        let mut problems = Vec::new();
        let base = rates(
            [("input", self.input), ("output", self.output), ("cache_read", self.cache_read), ("cache_write", self.cache_write)],
            &mut problems,
        );
        let long_prompt = self.long_prompt.as_ref().map(|long| {
            let mut inner = Vec::new();
            let rates = rates(
                [("input", long.input), ("output", long.output), ("cache_read", long.cache_read), ("cache_write", long.cache_write)],
                &mut inner,
            );
            problems.extend(inner.into_iter().map(|p| format!("long_prompt.{p}")));
            LongPrompt { above: long.above, rates }
        });
        if problems.is_empty() { Ok(ModelPrice { base, long_prompt }) } else { Err(problems) }
    }
}

/// USD per million tokens as written (`0.075`) → micro-dollars per million (`75_000`); `None`
/// for a negative, non-finite or absurd price.
pub fn micros_per_million(usd: f64) -> Option<MicrosPerMillion> {
    if !usd.is_finite() || !(0.0..=MAX_USD_PER_MILLION).contains(&usd) {
        return None;
    }
    Some((usd * 1_000_000.0).round() as MicrosPerMillion)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(v: f64) -> Option<MicrosPerMillion> {
        micros_per_million(v)
    }

    fn opus() -> ModelPrice {
        ModelPrice { base: Rates { input: usd(5.0), output: usd(25.0), cache_read: usd(0.5), cache_write: usd(6.25) }, long_prompt: None }
    }

    fn tokens(input: u64, output: u64, cache_read: u64, cache_write: u64) -> TokenCounts {
        TokenCounts { input, output, cache_read, cache_write }
    }

    #[test]
    fn micro_dollars_read_as_dollars() {
        assert_eq!(dollars(15_625), "$0.015625");
        assert_eq!(dollars(36_750_000), "$36.750000");
        assert_eq!(dollars(0), "$0.000000");
        assert_eq!(dollars(-1), "-$0.000001");
        assert_eq!(dollars(i64::MIN), "-$9223372036854.775808");
    }

    #[test]
    fn prices_are_read_exactly_and_absurd_ones_refused() {
        assert_eq!(usd(0.075), Some(75_000));
        assert_eq!(usd(6.25), Some(6_250_000));
        assert_eq!(usd(0.0), Some(0));
        assert_eq!(usd(MAX_USD_PER_MILLION), Some(10_000_000_000));
        for bad in [-0.01, f64::NAN, f64::INFINITY, MAX_USD_PER_MILLION + 1.0] {
            assert_eq!(usd(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_request_costs_each_class_at_its_rate_rounded_once() {
        // 1,000 in × $5 + 200 out × $25 + 10,000 read × $0.50 + 100 write × $6.25, per Mtok:
        // 5,000 + 5,000 + 5,000 + 625 = 15,625 µ$.
        assert_eq!(opus().cost(&tokens(1_000, 200, 10_000, 100)), Cost::Known { micros: 15_625 });
        // 1 token at $0.50/Mtok is half a µ$: rounded up; at $0.40, down.
        let cheap = |rate: f64| ModelPrice { base: Rates { input: usd(rate), ..Rates::default() }, long_prompt: None };
        assert_eq!(cheap(0.5).cost(&tokens(1, 0, 0, 0)), Cost::Known { micros: 1 });
        assert_eq!(cheap(0.4).cost(&tokens(1, 0, 0, 0)), Cost::Known { micros: 0 });
        assert_eq!(cheap(0.4).cost(&tokens(3, 0, 0, 0)), Cost::Known { micros: 1 });
        assert_eq!(opus().cost(&TokenCounts::default()), Cost::Known { micros: 0 });
        assert_eq!(Cost::Known { micros: 7 }.micros(), Some(7));
        assert_eq!(Cost::Unknown.micros(), None);
    }

    #[test]
    fn an_unknown_rate_makes_the_cost_unknown_only_when_its_class_was_used() {
        let gpt =
            ModelPrice { base: Rates { input: usd(5.0), output: usd(30.0), cache_read: usd(0.5), cache_write: None }, long_prompt: None };
        assert_eq!(gpt.cost(&tokens(10, 10, 10, 0)), Cost::Known { micros: 355 });
        assert_eq!(gpt.cost(&tokens(1_000_000, 0, 0, 0)), Cost::Known { micros: 5_000_000 });
        assert_eq!(gpt.cost(&tokens(1, 1, 1, 1)), Cost::Unknown);
        let book = PriceBook::new(BTreeMap::from([("gpt-5.5".to_owned(), gpt)]));
        assert_eq!(book.cost("gpt-5.5", &tokens(0, 1_000_000, 0, 0)), Cost::Known { micros: 30_000_000 });
        assert_eq!(book.cost("unlisted", &tokens(0, 0, 0, 0)), Cost::Unknown);
    }

    #[test]
    fn long_prompts_take_their_tier() {
        let tiered = ModelPrice {
            base: Rates { input: usd(5.0), output: usd(30.0), cache_read: usd(0.5), cache_write: None },
            long_prompt: Some(LongPrompt {
                above: 272_000,
                rates: Rates { input: usd(10.0), output: usd(45.0), cache_read: usd(1.0), cache_write: None },
            }),
        };
        // The prompt counts cached tokens too.
        assert_eq!(tiered.cost(&tokens(200_000, 0, 72_000, 0)), Cost::Known { micros: 1_000_000 + 36_000 });
        assert_eq!(tiered.cost(&tokens(200_000, 0, 72_001, 0)), Cost::Known { micros: 2_000_000 + 72_001 });
        assert_eq!(tokens(1, 2, 3, 4).prompt(), 8);
        assert_eq!(tokens(u64::MAX, 0, 1, 0).prompt(), u64::MAX);
    }

    #[test]
    fn costs_never_overflow() {
        let max = ModelPrice {
            base: Rates { input: usd(MAX_USD_PER_MILLION), output: usd(MAX_USD_PER_MILLION), cache_read: None, cache_write: None },
            long_prompt: None,
        };
        assert_eq!(max.cost(&tokens(u64::MAX, u64::MAX, 0, 0)), Cost::Known { micros: i64::MAX });
    }

    #[test]
    fn overrides_replace_given_fields_and_add_models() {
        let book = PriceBook::new(BTreeMap::from([("claude-opus-4-8".to_owned(), opus())]));
        let over = BTreeMap::from([
            ("claude-opus-4-8".to_owned(), ModelPrice { base: Rates { output: usd(20.0), ..Rates::default() }, long_prompt: None }),
            ("in-house".to_owned(), ModelPrice { base: Rates { input: usd(1.0), ..Rates::default() }, long_prompt: None }),
        ]);
        let merged = book.with_overrides(&over);
        let merged_opus = merged.get("claude-opus-4-8").unwrap();
        assert_eq!(merged_opus.base, Rates { output: usd(20.0), ..opus().base });
        assert_eq!(merged.get("in-house").unwrap().base.input, usd(1.0));
        assert_eq!(merged.models().count(), 2);
        assert_eq!(book.get("in-house"), None, "the shipped book is unchanged");

        let tier = |above: u64, input: f64| Some(LongPrompt { above, rates: Rates { input: usd(input), ..Rates::default() } });
        let tiered = PriceBook::new(BTreeMap::from([("m".to_owned(), ModelPrice { base: opus().base, long_prompt: tier(100, 9.0) })]));
        let same = BTreeMap::from([(
            "m".to_owned(),
            ModelPrice {
                base: Rates::default(),
                long_prompt: Some(LongPrompt { above: 100, rates: Rates { output: usd(3.0), ..Rates::default() } }),
            },
        )]);
        let long = tiered.with_overrides(&same).get("m").unwrap().long_prompt.unwrap();
        assert_eq!((long.rates.input, long.rates.output), (usd(9.0), usd(3.0)));
        // A tier of another threshold replaces the book's whole: none of its rates carry over.
        let output_only = Some(LongPrompt { above: 200, rates: Rates { output: usd(8.0), ..Rates::default() } });
        let other = BTreeMap::from([("m".to_owned(), ModelPrice { base: Rates::default(), long_prompt: output_only })]);
        assert_eq!(tiered.with_overrides(&other).get("m").unwrap().long_prompt, output_only);
        let none = BTreeMap::from([("m".to_owned(), ModelPrice { base: Rates::default(), long_prompt: None })]);
        assert_eq!(tiered.with_overrides(&none).get("m").unwrap().long_prompt, tier(100, 9.0));
    }
}

#[cfg(test)]
mod entry_tests {
    use super::*;

    #[test]
    fn entries_become_prices_and_every_bad_field_is_named() {
        let entry = PriceEntry {
            input: Some(5.0),
            output: Some(25.0),
            long_prompt: Some(LongPromptEntry { above: 200_000, input: Some(10.0), ..LongPromptEntry::default() }),
            ..PriceEntry::default()
        };
        let price = entry.to_price().unwrap();
        assert_eq!(price.base, Rates { input: Some(5_000_000), output: Some(25_000_000), cache_read: None, cache_write: None });
        assert_eq!(price.long_prompt, Some(LongPrompt { above: 200_000, rates: Rates { input: Some(10_000_000), ..Rates::default() } }));

        let bad = PriceEntry {
            input: Some(-1.0),
            cache_write: Some(f64::NAN),
            long_prompt: Some(LongPromptEntry { above: 1, output: Some(1e9), ..LongPromptEntry::default() }),
            ..PriceEntry::default()
        };
        let problems = bad.to_price().unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("input: -1 is not a price"), "{problems:?}");
        assert!(problems[1].starts_with("cache_write: NaN"), "{problems:?}");
        assert!(problems[2].starts_with("long_prompt.output: 1000000000"), "{problems:?}");
        assert_eq!(PriceEntry::default().to_price().unwrap(), ModelPrice { base: Rates::default(), long_prompt: None });
    }
}

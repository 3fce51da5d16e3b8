//! The lexical guard: a semantic hit is refused when the stored question and the asked one differ in what
//! embeddings blur: numbers, negations, named entities or units. "Convert 5 miles to km" and "Convert 50
//! miles to km" embed almost alike and need different answers.

use std::collections::BTreeSet;

/// What a question says that an embedding may not tell apart.
#[derive(Debug, Default, PartialEq, Eq)]
struct Marks {
    numbers: BTreeSet<String>,
    negations: usize,
    entities: BTreeSet<String>,
    units: BTreeSet<String>,
}

/// Why the guard refused a hit, or `None` when the two questions agree on every mark.
pub fn conflict(stored: &str, asked: &str) -> Option<&'static str> {
    let (a, b) = (marks(stored), marks(asked));
    if a.numbers != b.numbers {
        Some("numbers")
    } else if a.negations != b.negations {
        Some("negation")
    } else if a.units != b.units {
        Some("units")
    } else if a.entities != b.entities {
        Some("entities")
    } else {
        None
    }
}

const NEGATIONS: &[&str] = &[
    "not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor", "cannot",
    "without", "nicht", "kein", "keine", "nie", "pas", "jamais", "aucun", "sin", "nunca", "ningún",
    "ninguna", "non", "mai",
];

const NUMBER_WORDS: &[(&str, &str)] = &[
    ("zero", "0"),
    ("one", "1"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
    ("eleven", "11"),
    ("twelve", "12"),
    ("thirteen", "13"),
    ("fourteen", "14"),
    ("fifteen", "15"),
    ("sixteen", "16"),
    ("seventeen", "17"),
    ("eighteen", "18"),
    ("nineteen", "19"),
    ("twenty", "20"),
    ("thirty", "30"),
    ("forty", "40"),
    ("fifty", "50"),
    ("sixty", "60"),
    ("seventy", "70"),
    ("eighty", "80"),
    ("ninety", "90"),
    ("hundred", "100"),
    ("thousand", "1000"),
    ("million", "1000000"),
    ("billion", "1000000000"),
    ("half", "0.5"),
    ("dozen", "12"),
    ("first", "1st"),
    ("second", "2nd"),
    ("third", "3rd"),
];

const UNITS: &[&str] = &[
    "%",
    "percent",
    "$",
    "€",
    "£",
    "¥",
    "usd",
    "eur",
    "gbp",
    "dollar",
    "euro",
    "pound",
    "yen",
    "km",
    "m",
    "cm",
    "mm",
    "mile",
    "meter",
    "metre",
    "kilometer",
    "kilometre",
    "foot",
    "feet",
    "inch",
    "yard",
    "kg",
    "g",
    "mg",
    "lb",
    "lbs",
    "ounce",
    "oz",
    "gram",
    "kilogram",
    "ton",
    "tonne",
    "l",
    "ml",
    "liter",
    "litre",
    "gallon",
    "°c",
    "°f",
    "celsius",
    "fahrenheit",
    "kelvin",
    "kb",
    "mb",
    "gb",
    "tb",
    "byte",
    "bit",
    "ms",
    "second",
    "minute",
    "hour",
    "day",
    "week",
    "month",
    "year",
    "kwh",
    "w",
    "kw",
    "mph",
    "kph",
    "hz",
    "ghz",
    "mhz",
];

/// Words capitalised for grammar, not because they name something.
const NOT_NAMES: &[&str] = &[
    "i", "i'm", "i've", "i'd", "i'll", "ok", "okay", "please", "thanks", "hi", "hello", "hey",
];

fn marks(text: &str) -> Marks {
    let mut m = Marks::default();
    let mut sentence_start = true;
    let mut after_number = false;
    for raw in text.split(|c: char| c.is_whitespace()) {
        let ends_sentence = raw.ends_with(['.', '?', '!', ':', ';']);
        let word = raw.trim_matches(|c: char| {
            !(c.is_alphanumeric() || matches!(c, '%' | '$' | '€' | '£' | '¥' | '°' | '\''))
        });
        if word.is_empty() {
            sentence_start |= ends_sentence;
            continue;
        }
        let lower = word.to_lowercase();
        let mut is_number = false;
        // Numbers, with what is glued to them: "5km", "$20", "10%", "3.5".
        let digits: String = word
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let digits = digits.trim_matches('.');
        if word.chars().any(|c| c.is_ascii_digit()) {
            is_number = true;
            m.numbers.insert(digits.replace(',', ""));
            let glued: String = lower
                .chars()
                .filter(|c| !(c.is_ascii_digit() || matches!(c, '.' | ',')))
                .collect();
            if !glued.is_empty() {
                m.units.insert(unit(&glued));
            }
        } else if let Some((_, n)) = NUMBER_WORDS.iter().find(|(w, _)| *w == lower) {
            is_number = true;
            m.numbers.insert((*n).to_owned());
        } else if NEGATIONS.contains(&lower.as_str()) || lower.ends_with("n't") {
            m.negations += 1;
        } else if UNITS.contains(&unit(&lower).as_str())
            && (after_number || lower.chars().any(|c| !c.is_alphanumeric()) || lower.len() > 2)
        {
            m.units.insert(unit(&lower));
        } else if is_name(word, sentence_start) {
            m.entities.insert(lower);
        }
        after_number = is_number;
        sentence_start = ends_sentence;
    }
    m
}

/// A unit's singular, lower-case form ("Miles" → "mile").
fn unit(word: &str) -> String {
    let w = word.to_lowercase();
    match w.strip_suffix('s') {
        Some(stem) if stem.len() > 1 && UNITS.contains(&stem) => stem.to_owned(),
        _ => w,
    }
}

/// A capitalised word inside a sentence, or an acronym anywhere.
fn is_name(word: &str, sentence_start: bool) -> bool {
    let mut chars = word.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let acronym = word.chars().filter(|c| c.is_alphabetic()).count() >= 2
        && word.chars().all(|c| !c.is_lowercase());
    let capitalised = first.is_uppercase() && !sentence_start;
    (acronym || capitalised) && !NOT_NAMES.contains(&word.to_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::conflict;

    #[test]
    fn numbers_negations_units_and_names_must_agree() {
        let refused = [
            ("Convert 5 miles to km", "Convert 50 miles to km", "numbers"),
            (
                "What is two plus two?",
                "What is two plus three?",
                "numbers",
            ),
            (
                "Is it safe to drink tap water?",
                "Is it not safe to drink tap water?",
                "negation",
            ),
            (
                "Should I restart the server?",
                "Shouldn't I restart the server?",
                "negation",
            ),
            ("How far is 10 km?", "How far is 10 miles?", "units"),
            ("What is 20% of 80?", "What is 20 of 80?", "units"),
            (
                "What is the capital of France?",
                "What is the capital of Spain?",
                "entities",
            ),
            (
                "How do I deploy to AWS?",
                "How do I deploy to GCP?",
                "entities",
            ),
        ];
        for (a, b, why) in refused {
            assert_eq!(conflict(a, b), Some(why), "{a} / {b}");
        }
        let agreed = [
            (
                "What is the capital of France?",
                "Tell me the capital city of France.",
            ),
            ("Convert 5 miles to km please", "How many km are 5 miles?"),
            (
                "How do I reverse a list in Python?",
                "What's the way to reverse a Python list?",
            ),
            (
                "Explain recursion simply.",
                "Can you explain recursion in simple terms?",
            ),
        ];
        for (a, b) in agreed {
            assert_eq!(conflict(a, b), None, "{a} / {b}");
        }
    }
}

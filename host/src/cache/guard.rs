//! The lexical guard: a semantic hit is refused when the stored question and the asked one differ in what
//! embeddings blur: numbers, negations, named entities or units. "Convert 5 miles to km" and "Convert 50
//! miles to km" embed almost alike and need different answers.

use std::collections::BTreeSet;

/// What a question says that an embedding may not tell apart.
#[derive(Debug, Default, PartialEq, Eq)]
struct Marks {
    numbers: BTreeSet<String>,
    negations: usize,
    /// Names, lower-cased, in the order the question first mentions them.
    entities: Vec<String>,
    units: BTreeSet<String>,
    /// Every word, lower-cased, without a plural or possessive `s`.
    words: Vec<String>,
}

/// Where a question moves something: the first content words after "from" and after "to" or "into".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route<'a> {
    from: Option<&'a str>,
    to: Option<&'a str>,
}

impl Route<'_> {
    /// "From savings to current" against "from current to savings" (or "into savings").
    fn reversed(self, other: Route<'_>) -> bool {
        let same = |x: Option<&str>, y: Option<&str>| x.is_some() && x == y;
        (self.from.is_some() || other.from.is_some())
            && (same(self.from, other.to) || same(self.to, other.from))
    }
}

impl Marks {
    fn route(&self) -> Route<'_> {
        let after = |marks: &[&str]| {
            let at = self
                .words
                .iter()
                .position(|w| marks.contains(&w.as_str()))?;
            self.words[at + 1..]
                .iter()
                .map(String::as_str)
                .find(|w| !FUNCTION_WORDS.contains(w))
        };
        Route {
            from: after(&["from"]),
            to: after(&["to", "into", "onto"]),
        }
    }

    fn has(&self, word: &str) -> bool {
        self.words.iter().any(|w| w == word)
    }

    /// The words that carry the question's content: not function words, fillers or numbers.
    fn content(&self) -> BTreeSet<&str> {
        self.words
            .iter()
            .map(String::as_str)
            .filter(|w| !FUNCTION_WORDS.contains(w) && !w.chars().any(|c| c.is_ascii_digit()))
            .collect()
    }

    /// The groups of `class` the question mentions, by word or by two words read as one ("full time").
    fn groups(&self, class: &[&str]) -> BTreeSet<usize> {
        let pairs = self.words.windows(2).map(|w| format!("{}-{}", w[0], w[1]));
        let words = self.words.iter().cloned().chain(pairs);
        let mut found = BTreeSet::new();
        for word in words {
            for (i, group) in class.iter().enumerate() {
                if group.split('|').any(|g| g == word) {
                    found.insert(i);
                }
            }
        }
        found
    }
}

/// Why the guard refused a hit, or `None` when the two questions agree on every mark.
pub fn conflict(stored: &str, asked: &str) -> Option<&'static str> {
    let (a, b) = (marks(stored), marks(asked));
    if a.numbers != b.numbers {
        return Some("numbers");
    }
    if a.negations != b.negations || negated_by_prefix(&a, &b) || negated_by_prefix(&b, &a) {
        return Some("negation");
    }
    if a.units != b.units {
        return Some("units");
    }
    // A name one side mentions and the other does not (in any case, "UK" and "uk" are one name).
    let unmatched = |x: &Marks, y: &Marks| x.entities.iter().any(|e| !y.has(e));
    if unmatched(&a, &b) || unmatched(&b, &a) {
        return Some("entities");
    }
    // The same names in another order: "from MySQL to Postgres" and "from Postgres to MySQL".
    let order = |x: &Marks, y: &Marks| -> Vec<String> {
        x.entities
            .iter()
            .filter(|e| y.entities.contains(e))
            .cloned()
            .collect()
    };
    if order(&a, &b) != order(&b, &a) || a.route().reversed(b.route()) {
        return Some("order");
    }
    // Who the question is for: "the flu jab" and "the flu jab for my child".
    for class in AUDIENCES {
        if a.groups(class) != b.groups(class) {
            return Some("audience");
        }
    }
    // Two different alternatives of one kind: Saturday and Sunday, adults and children, open and closed.
    for class in CONTRASTS {
        let (x, y) = (a.groups(class), b.groups(class));
        if !x.is_empty() && !y.is_empty() && x != y {
            return Some("contrast");
        }
    }
    // One question is the other with one word more, set before a word both share, so narrowing it: "my
    // account" and "my joint account", "the warranty" and "the extended warranty".
    if narrowed(&a, &b) || narrowed(&b, &a) {
        return Some("qualifier");
    }
    None
}

/// Whether `y` is `x` with one content word more, placed right before a content word of both.
fn narrowed(x: &Marks, y: &Marks) -> bool {
    let (short, long) = (x.content(), y.content());
    let extra: Vec<&str> = long.difference(&short).copied().collect();
    let [extra] = extra[..] else {
        return false;
    };
    if !short.is_subset(&long) {
        return false;
    }
    y.words.windows(2).any(|w| {
        w[0] == extra && !FUNCTION_WORDS.contains(&w[1].as_str()) && short.contains(w[1].as_str())
    })
}

/// Whether `y` holds a word that is one of `x`'s words with a negating prefix, and not that word itself:
/// "safe" and "unsafe", "refundable" and "non-refundable", "employed" and "self-employed".
fn negated_by_prefix(x: &Marks, y: &Marks) -> bool {
    const PREFIXES: &[&str] = &[
        "non-", "self-", "ex-", "anti-", "non", "un", "in", "im", "il", "ir", "dis", "mis", "de",
    ];
    y.words.iter().any(|w| {
        !x.has(w)
            && PREFIXES.iter().any(|p| {
                w.strip_prefix(p)
                    .is_some_and(|root| root.len() >= 4 && x.has(root) && !y.has(root))
            })
    })
}

const NEGATIONS: &[&str] = &[
    "not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor", "cannot",
    "without", "nicht", "kein", "keine", "nie", "pas", "jamais", "aucun", "sin", "nunca", "ningún",
    "ninguna", "non", "mai", "stop", "stopping", "avoid", "avoiding", "prevent",
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

/// Units of time: "how long" and "how many days" ask alike, so these count only after a number.
const TIME_UNITS: &[&str] = &["second", "minute", "hour", "day", "week", "month", "year"];

/// Words capitalised for grammar, not because they name something.
const NOT_NAMES: &[&str] = &[
    "i", "i'm", "i've", "i'd", "i'll", "ok", "okay", "please", "thanks", "hi", "hello", "hey",
];

fn marks(text: &str) -> Marks {
    let mut m = Marks::default();
    let mut sentence_start = true;
    let mut after_number = false;
    for raw in text.split(|c: char| c.is_whitespace() || matches!(c, '/' | ',' | '(' | ')')) {
        let ends_sentence = raw.ends_with(['.', '?', '!', ':', ';']);
        let word = raw.trim_matches(|c: char| {
            !(c.is_alphanumeric() || matches!(c, '%' | '$' | '€' | '£' | '¥' | '°' | '\''))
        });
        if word.is_empty() {
            sentence_start |= ends_sentence;
            continue;
        }
        let lower = word.to_lowercase().replace('’', "'");
        m.words.push(normal(&lower));
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
            && (after_number
                || lower.chars().any(|c| !c.is_alphanumeric())
                || (lower.len() > 2 && !TIME_UNITS.contains(&unit(&lower).as_str())))
        {
            m.units.insert(unit(&lower));
        } else if is_name(word, sentence_start) {
            let name = normal(&lower);
            if !m.entities.contains(&name) {
                m.entities.push(name);
            }
        }
        after_number = is_number;
        sentence_start = ends_sentence;
    }
    m
}

/// A lower-case word without its possessive or plural `s`: "children's" → "children", "Sundays" →
/// "sunday", "policies" → "policy"; "does", "bus" and "class" stay as they are.
fn normal(lower: &str) -> String {
    let w = lower.trim_end_matches("'s").trim_end_matches('\'');
    if w.chars().count() <= 3 || NOT_PLURAL.contains(&w) {
        return w.to_owned();
    }
    if let Some(stem) = w.strip_suffix("ies") {
        return format!("{stem}y");
    }
    match w.strip_suffix('s') {
        Some(stem) if !stem.ends_with(['s', 'u', 'i']) => stem.to_owned(),
        _ => w.to_owned(),
    }
}

/// Words ending in `s` that are not plurals.
const NOT_PLURAL: &[&str] = &[
    "does",
    "has",
    "was",
    "yes",
    "its",
    "gas",
    "news",
    "series",
    "species",
    "always",
    "perhaps",
    "towards",
    "afterwards",
    "whereas",
    "thanks",
    "lens",
    "chaos",
    "canvas",
    "atlas",
    "alias",
    "means",
    "sometimes",
    "overseas",
];

/// Words that shape a sentence but not what it asks, and the greetings and fillers around a question.
const FUNCTION_WORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "and",
    "or",
    "but",
    "if",
    "then",
    "so",
    "of",
    "to",
    "for",
    "in",
    "on",
    "at",
    "by",
    "with",
    "from",
    "into",
    "onto",
    "about",
    "as",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "am",
    "do",
    "does",
    "did",
    "done",
    "have",
    "has",
    "had",
    "having",
    "can",
    "could",
    "will",
    "would",
    "shall",
    "should",
    "may",
    "might",
    "must",
    "i",
    "me",
    "my",
    "mine",
    "you",
    "your",
    "we",
    "us",
    "our",
    "it",
    "its",
    "it'",
    "they",
    "them",
    "their",
    "he",
    "she",
    "him",
    "her",
    "this",
    "that",
    "these",
    "those",
    "there",
    "here",
    "what",
    "which",
    "who",
    "whom",
    "whose",
    "when",
    "where",
    "why",
    "how",
    "i'm",
    "i've",
    "i'd",
    "i'll",
    "you're",
    "we're",
    "they're",
    "get",
    "got",
    "any",
    "some",
    "all",
    "also",
    "just",
    "please",
    "thank",
    "thanks",
    "hi",
    "hello",
    "hey",
    "team",
    "okay",
    "ok",
    "well",
    "um",
    "uh",
    "quick",
    "question",
    "actually",
    "basically",
    "really",
    "wondering",
    "anyone",
    "someone",
    "tell",
    "know",
    "want",
    "way",
    "go",
    "let",
    "let'",
    "there'",
    "that'",
    "what'",
    "how'",
    "where'",
    "who'",
    "again",
    "now",
    "very",
    "too",
    "than",
    "yeah",
    "yes",
    "sorry",
    "bother",
    "silly",
    "cheers",
    "hiya",
    "er",
    "erm",
    "like",
    "many",
    "advance",
    "morning",
    "usually",
    "normally",
    "typically",
    "generally",
    "need",
    "under",
    "possible",
    "able",
    "much",
];

/// Who a question is for. Unlike the other contrasts, naming one where the other question names none is a
/// difference too: an answer for anyone is not the answer for a child.
const AUDIENCES: &[&[&str]] = &[
    &[
        "adult|grown-up",
        "child|children|kid|minor|junior",
        "baby|infant|toddler|newborn",
        "teen|teenager|adolescent",
        "senior|pensioner|elderly",
    ],
    &[
        "men|man|male|gentlemen",
        "women|woman|female|lady",
        "boy",
        "girl",
    ],
    &[
        "employed|employee",
        "self-employed|freelance|freelancer|contractor",
        "unemployed",
        "retired",
    ],
    &["visitor|guest", "resident|member"],
];

/// Kinds of alternatives an embedding places close together although each needs its own answer. A
/// class is a list of groups (`|` joins the words of one group); two questions that both name a group of
/// a class must name the same ones. Words are in `normal` form; two words read as one are joined by `-`.
const CONTRASTS: &[&[&str]] = &[
    &[
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "weekday",
        "weekend",
    ],
    &[
        "january|jan",
        "february|feb",
        "march",
        "april|apr",
        "june",
        "july",
        "august|aug",
        "september|sept",
        "october|oct",
        "november|nov",
        "december|dec",
    ],
    &["spring", "summer", "autumn", "winter"],
    &["morning", "afternoon", "evening", "night|overnight|tonight"],
    &["today|tonight", "tomorrow", "yesterday"],
    &["open|opening|opened", "closed|close|closing|shut"],
    &["on", "off"],
    &[
        "start|begin|beginning|starting|started",
        "end|ending|finish|finishing|ended",
    ],
    &[
        "allowed|allow|permitted|permit",
        "banned|ban|forbidden|prohibited",
    ],
    &[
        "include|included|including|cover|covered",
        "exclude|excluded|excluding",
    ],
    &[
        "enable|enabled|activate|turn-on|switch-on",
        "disable|disabled|deactivate|turn-off|switch-off",
    ],
    &["opt-in", "opt-out"],
    &["check-in", "check-out"],
    &["same-day", "next-day"],
    &["before|within|during", "after"],
    &["under|below|within", "over|above|beyond"],
    &[
        "add|added|adding|deposit|top-up",
        "remove|removed|removing|delete|deleted|withdraw|withdrawal",
    ],
    &["buy|buying|bought|purchase", "sell|selling|sold"],
    &["upload", "download"],
    &["import|importing", "export|exporting"],
    &[
        "increase|increased|raise|raised|rise",
        "decrease|decreased|reduce|reduced|lowered|cut",
    ],
    &[
        "more|higher|greater|bigger|larger",
        "less|lower|fewer|smaller",
    ],
    &[
        "maximum|max|most|highest|largest",
        "minimum|min|least|lowest|smallest",
    ],
    &["first|earliest", "last|latest"],
    &["early|earlier", "late|later"],
    &["best|better", "worst|worse"],
    &["cheap|cheaper|cheapest", "expensive|dear|dearer|pricey"],
    &[
        "fast|faster|fastest|quick|quicker|quickest|quickly",
        "slow|slower|slowest",
    ],
    &["hot|warm|heat", "cold|cool|chilly|freezing"],
    &["wet|rainy", "dry"],
    &["pass|passed|passing", "fail|failed|failing"],
    &[
        "approved|approve|accepted|accept|granted",
        "rejected|reject|declined|decline|denied|deny|refused|refuse|revoke|revoked",
    ],
    &[
        "compulsory|mandatory|required|obligatory",
        "optional|voluntary",
    ],
    &["full-time|fulltime", "part-time|parttime"],
    &[
        "home|domestic|inland",
        "abroad|overseas|international|foreign",
    ],
    &[
        "house|flat|apartment|residential|household|personal",
        "business|office|commercial|shop|workplace|company|corporate",
    ],
    &["tenant|renter|lodger", "landlord|landlady|owner|homeowner"],
    &["employer", "employee|worker"],
    &["buyer|purchaser", "seller|vendor"],
    &[
        "economy",
        "business|business-class",
        "first-class",
        "premium|premium-economy",
    ],
    &[
        "online|digital|electronic",
        "paper|postal|offline|in-person",
    ],
    &[
        "red",
        "blue",
        "green",
        "yellow",
        "orange",
        "amber",
        "white",
        "black",
        "grey|gray",
        "purple",
        "pink",
        "brown",
    ],
    &["busy|crowded|packed", "quiet|empty|calm"],
    &[
        "join|joining|sign-up|register|subscribe",
        "leave|leaving|quit|unsubscribe",
    ],
    &[
        "arrive|arrival|arriving|incoming|inbound",
        "depart|departure|departing|outgoing|outbound",
    ],
    &["send|sending|sent", "receive|receiving|received"],
    &["lend|lending|lent", "borrow|borrowing|borrowed"],
    &["debit", "credit"],
    &["upgrade", "downgrade"],
    &[
        "pause|paused|suspend|suspended",
        "resume|resumed|unpause|restart|reactivate",
    ],
    &["left", "right"],
    &[
        "north|northern",
        "south|southern",
        "east|eastern",
        "west|western",
    ],
    &["public", "private"],
    &[
        "new|brand-new",
        "used|second-hand|secondhand|refurbished|old",
    ],
    &["input", "output"],
    &[
        "login|log-in|sign-in|signin|logon",
        "logout|log-out|sign-out|signout|logoff",
    ],
    &["positive", "negative"],
    &["true", "false"],
    &["win|won|winner|winning", "lose|lost|loser|losing"],
    &["inside|indoor|internal", "outside|outdoor|external"],
    &["single|solo", "double|dual|twin"],
    &[
        "encrypt|encryption|encrypted",
        "decrypt|decryption|decrypted",
    ],
    &[
        "good|great|excellent|outstanding",
        "bad|poor|terrible|inadequate|awful",
    ],
    &["spicy", "mild"],
    &[
        "free|basic|starter|trial",
        "paid|premium|enterprise|professional",
    ],
    &["hand|carry-on|cabin", "checked|hold"],
    &[
        "chicken",
        "beef",
        "pork",
        "lamb",
        "fish",
        "turkey",
        "duck",
        "prawn|shrimp",
        "vegetarian|vegan",
    ],
    &[
        "dog", "puppy", "cat", "kitten", "rabbit", "hamster", "horse",
    ],
    &[
        "car|motor|van",
        "home|building|content",
        "travel",
        "life",
        "pet",
        "health|medical|dental",
    ],
    &["delivery|takeaway|take-out", "dine-in|eat-in"],
    &[
        "undergraduate|bachelor|bsc",
        "postgraduate|master|msc|mba|phd|doctorate",
    ],
    &[
        "pro|advantage|benefit",
        "con|disadvantage|drawback|downside|risk",
    ],
    &["love", "hate|dislike"],
    &[
        "big|bigger|biggest|large|larger|largest",
        "small|smaller|smallest|little|tiny",
    ],
    &["strong|stronger", "weak|weaker"],
    &["high|higher|highest", "low|lower|lowest"],
    &["cash", "card|contactless"],
    &[
        "hourly",
        "daily",
        "weekly",
        "monthly",
        "annual|annually|yearly",
    ],
];

/// A unit's singular, lower-case form ("Miles" → "mile").
fn unit(word: &str) -> String {
    let w = word.to_lowercase();
    if w == "percent" {
        return "%".to_owned();
    }
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
    use super::{AUDIENCES, CONTRASTS, conflict, normal};

    #[test]
    fn the_word_lists_are_in_normal_form() {
        let odd: Vec<&str> = CONTRASTS
            .iter()
            .chain(AUDIENCES)
            .flat_map(|class| class.iter().flat_map(|g| g.split('|')))
            .filter(|w| normal(w) != *w)
            .collect();
        assert!(odd.is_empty(), "not in normal form: {odd:?}");
        assert_eq!(normal("sundays"), "sunday");
        assert_eq!(normal("policies"), "policy");
        assert_eq!(normal("children's"), "children");
        assert_eq!(normal("does"), "does");
        assert_eq!(normal("class"), "class");
    }

    #[test]
    fn alternatives_direction_audience_and_a_narrowing_word_must_agree() {
        let refused = [
            (
                "Is the clinic open on Sundays?",
                "Is the clinic closed on Sundays?",
                "contrast",
            ),
            (
                "What's the paracetamol dose for adults?",
                "What's the paracetamol dose for children?",
                "audience",
            ),
            (
                "How much holiday do full time staff get?",
                "How much holiday do part-time staff get?",
                "contrast",
            ),
            (
                "Is ibuprofen safe with alcohol?",
                "Is ibuprofen unsafe with alcohol?",
                "negation",
            ),
            (
                "Is the deposit refundable?",
                "Is the deposit non-refundable?",
                "negation",
            ),
            (
                "Which painkillers can I take?",
                "Which painkillers should I avoid?",
                "negation",
            ),
            (
                "How do I migrate from MySQL to Postgres?",
                "How do I migrate from Postgres to MySQL?",
                "order",
            ),
            (
                "How do I move money from my savings to my current account?",
                "How do I move money from my current account to my savings?",
                "order",
            ),
            (
                "Can I get the flu jab for free?",
                "Can my child get the flu jab for free?",
                "audience",
            ),
            (
                "What's my account balance?",
                "What's my joint account balance?",
                "qualifier",
            ),
        ];
        for (a, b, why) in refused {
            assert_eq!(conflict(a, b), Some(why), "{a} / {b}");
            assert_eq!(conflict(b, a), Some(why), "{b} / {a}");
        }
        let agreed = [
            (
                "Is the clinic open on Sundays?",
                "Can I come to the clinic on a Sunday?",
            ),
            (
                "What is the speed limit in the UK?",
                "what is the speed limit in the uk?",
            ),
            (
                "How long does it take to fit a boiler?",
                "How many days does fitting a boiler take?",
            ),
            ("What's 15% of 200?", "Calculate fifteen percent of 200"),
            (
                "How do I bleed a radiator?",
                "Sorry, silly question, but how do I bleed a radiator?",
            ),
            (
                "What is the capital of Australia?",
                "Which city is Australia's capital?",
            ),
        ];
        for (a, b) in agreed {
            assert_eq!(conflict(a, b), None, "{a} / {b}");
        }
    }

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

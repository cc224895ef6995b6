//! Sentence segmentation: Unicode sentence boundaries (UAX #29) corrected for abbreviations,
//! initials and dialogue, on paragraphs whose hard line breaks have already been joined.
//!
//! UAX #29 alone breaks after "Mr. " before a capital and after `"Oh!" ` before a lowercase
//! "said"; both are common in novels, so the raw boundaries are merged back where the piece
//! before a boundary ends in a known abbreviation or a single initial, or where the piece after
//! it starts in lowercase (a sentence never does).

use unicode_segmentation::UnicodeSegmentation;

/// Abbreviations (lowercase, without the final period) after which a capital does not start a
/// new sentence: titles and similar words that are almost always followed by a name.
const TITLES: &[&str] = &[
    "mr", "mrs", "ms", "messrs", "dr", "st", "prof", "rev", "hon", "sr", "jr", "gen", "col",
    "capt", "lt", "sgt", "maj", "gov", "pres", "mt", "ft", "mme", "mlle", "mssrs",
];

/// Abbreviations that end a word inside a sentence; a capital after them still usually does not
/// start a sentence ("e.g. Linux", "vs. Windows", "Fig. 3", "approx. 5").
const INNER: &[&str] = &[
    "e.g", "i.e", "cf", "vs", "viz", "fig", "figs", "approx", "eq", "no", "nos", "vol", "pp", "p",
    "ch", "sec", "dept", "inc", "ltd", "co", "corp", "al", "ca", "jan", "feb", "mar", "apr", "jun",
    "jul", "aug", "sep", "sept", "oct", "nov", "dec",
];

/// Splits a paragraph (no line breaks needed; any are treated as spaces) into trimmed,
/// non-empty sentences.
pub fn split_sentences(paragraph: &str) -> Vec<String> {
    let mut sentences: Vec<String> = Vec::new();
    let mut current = String::new();
    // UAX #29 treats a line break as a paragraph end; hard-wrapped lines are not.
    let joined = paragraph.replace(['\r', '\n'], " ");
    for piece in joined.split_sentence_bounds() {
        if current.trim().is_empty() {
            current.push_str(piece);
            continue;
        }
        if should_merge(&current, piece) {
            current.push_str(piece);
        } else {
            push_trimmed(&mut sentences, &current);
            current.clear();
            current.push_str(piece);
        }
    }
    push_trimmed(&mut sentences, &current);
    sentences
}

fn push_trimmed(out: &mut Vec<String>, s: &str) {
    let t = s.trim();
    if !t.is_empty() {
        // Collapse internal runs of whitespace (from joined hard-wrapped lines).
        out.push(t.split_whitespace().collect::<Vec<_>>().join(" "));
    }
}

/// Whether the boundary between `before` and `after` is a false one.
fn should_merge(before: &str, after: &str) -> bool {
    let next = after.trim_start();
    let Some(first) = next.chars().next() else {
        return true;
    };
    // A sentence does not start in lowercase: `"Oh!" said she.`, "... etc. and so on".
    if first.is_lowercase() {
        return true;
    }
    let prev = before.trim_end();
    // Only a period can belong to an abbreviation; "!" and "?" end sentences.
    let Some(stem) = prev.strip_suffix('.') else {
        return false;
    };
    let word = stem
        .rsplit(|c: char| c.is_whitespace() || c == '(' || c == '"' || c == '\'' || c == '“')
        .next()
        .unwrap_or("");
    if word.is_empty() {
        return false;
    }
    let lower = word.to_lowercase();
    // "No. 5", "pp. 12": a number after these is never a new sentence.
    if first.is_ascii_digit() && INNER.contains(&lower.as_str()) {
        return true;
    }
    if TITLES.contains(&lower.as_str()) {
        return true;
    }
    // Single initials: "J. R. R. Tolkien", "George W. Bush".
    let mut chars = word.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        if c.is_uppercase() {
            return true;
        }
    }
    // Letter-dot chains such as "U.S", "a.m", "Ph.D" (the final period was stripped): acronyms
    // far more often than sentence ends.
    if word.contains('.')
        && word
            .split('.')
            .all(|p| (1..=2).contains(&p.chars().count()))
    {
        return true;
    }
    // Dotted abbreviations such as "e.g", "i.e" (the final period was stripped).
    if INNER.contains(&lower.as_str()) && lower != "no" {
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<String> {
        split_sentences(s)
    }

    #[test]
    fn plain_sentences() {
        assert_eq!(
            split("The cat sat. The dog ran! Did it? Yes."),
            vec!["The cat sat.", "The dog ran!", "Did it?", "Yes."]
        );
    }

    #[test]
    fn titles_do_not_end_sentences() {
        assert_eq!(
            split("Mr. Knightley and Mrs. Weston met Dr. Perry at St. Paul's. They talked."),
            vec![
                "Mr. Knightley and Mrs. Weston met Dr. Perry at St. Paul's.",
                "They talked."
            ]
        );
    }

    #[test]
    fn initials_and_latin_abbreviations() {
        assert_eq!(
            split("J. R. R. Tolkien wrote books, e.g. The Hobbit, i.e. a novel. It sold well."),
            vec![
                "J. R. R. Tolkien wrote books, e.g. The Hobbit, i.e. a novel.",
                "It sold well."
            ]
        );
        assert_eq!(
            split("The U.S. Army met at 9 a.m. Monday. Dr. Who, Ph.D. Came too."),
            vec![
                "The U.S. Army met at 9 a.m. Monday.",
                "Dr. Who, Ph.D. Came too."
            ]
        );
        assert_eq!(
            split("Apples, pears, etc. are fruit. So what."),
            vec!["Apples, pears, etc. are fruit.", "So what."]
        );
    }

    #[test]
    fn number_abbreviation_before_digits() {
        assert_eq!(
            split("He lived at No. 5 Baker Street. Then he moved."),
            vec!["He lived at No. 5 Baker Street.", "Then he moved."]
        );
        // "No." as a word at the end of a sentence still ends it.
        assert_eq!(
            split("He said No. Then left."),
            vec!["He said No.", "Then left."]
        );
    }

    #[test]
    fn dialogue_in_novels() {
        assert_eq!(
            split("\"Oh!\" said she. \"Is it you?\" He nodded."),
            vec!["\"Oh!\" said she.", "\"Is it you?\"", "He nodded."]
        );
    }

    #[test]
    fn hard_wrapped_lines_are_joined() {
        let para = "It is a truth universally acknowledged, that a single man in\npossession \
                    of a good fortune, must be in want of a wife.\nHowever little known";
        assert_eq!(
            split(para),
            vec![
                "It is a truth universally acknowledged, that a single man in possession of a \
                 good fortune, must be in want of a wife.",
                "However little known"
            ]
        );
    }

    #[test]
    fn empty_and_whitespace() {
        assert!(split("").is_empty());
        assert!(split("   \n ").is_empty());
        assert_eq!(split("No final period"), vec!["No final period"]);
    }
}

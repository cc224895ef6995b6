//! Examples to model inputs: `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]` with token types 0 for
//! the first segment and 1 for the second, truncated to the sequence length as `transformers`'
//! tokenizers truncate a pair (`longest_first`: a token off the longer side at a time, off the
//! second where both are as long).

use bert_data::{TaskExample, TaskLabel, WordPieceTokenizer};

use crate::error::{FinetuneError, Result};

/// One example as token ids, ready for batching.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    /// `[CLS] A [SEP] (B [SEP])`.
    pub ids: Vec<u32>,
    /// Token types: 0 through the first `[SEP]`, 1 after it.
    pub types: Vec<u32>,
    /// The label.
    pub label: TaskLabel,
}

/// Encodes `examples` to at most `max_len` tokens each (at least 3, room for the special
/// tokens and one of each text).
pub fn encode_examples(
    tokenizer: &WordPieceTokenizer,
    examples: &[TaskExample],
    max_len: usize,
) -> Result<Vec<Encoded>> {
    if max_len < 4 {
        return Err(FinetuneError::Config(format!(
            "`finetune.max_seq_length` is {max_len}; it must leave room for [CLS], two [SEP] and \
             text (at least 4)"
        )));
    }
    let special = tokenizer.vocab().special();
    examples
        .iter()
        .map(|e| {
            let mut a = tokenizer.encode(&e.text_a)?;
            let mut b = match &e.text_b {
                Some(text) => Some(tokenizer.encode(text)?),
                None => None,
            };
            let budget = max_len - if b.is_some() { 3 } else { 2 };
            truncate_pair(&mut a, b.as_mut(), budget);
            let mut ids = Vec::with_capacity(max_len);
            ids.push(special.cls);
            ids.extend(&a);
            ids.push(special.sep);
            let first = ids.len();
            if let Some(b) = &b {
                ids.extend(b);
                ids.push(special.sep);
            }
            let types = (0..ids.len()).map(|i| u32::from(i >= first)).collect();
            Ok(Encoded {
                ids,
                types,
                label: e.label,
            })
        })
        .collect()
}

/// Cuts `a` and `b` to `budget` tokens together, a token off the longer at a time (off `b`
/// where they are as long).
fn truncate_pair(a: &mut Vec<u32>, b: Option<&mut Vec<u32>>, budget: usize) {
    match b {
        None => a.truncate(budget),
        Some(b) => {
            while a.len() + b.len() > budget {
                if a.len() > b.len() {
                    a.pop();
                } else {
                    b.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_takes_from_the_longer_side_and_from_the_second_on_a_tie() {
        let (mut a, mut b) = (vec![1; 10], vec![2; 3]);
        truncate_pair(&mut a, Some(&mut b), 8);
        assert_eq!((a.len(), b.len()), (5, 3));
        let (mut a, mut b) = (vec![1; 5], vec![2; 5]);
        truncate_pair(&mut a, Some(&mut b), 7);
        assert_eq!((a.len(), b.len()), (4, 3));
        let mut a = vec![1; 9];
        truncate_pair(&mut a, None, 4);
        assert_eq!(a.len(), 4);
    }
}

//! Parser for the Python dict literal in a `.npy` header. Hand-written on purpose: no
//! maintained crate parses Python literals, the grammar needed is tiny (strings, ints,
//! True/False/None, tuples/lists), and it must be more tolerant than NumPy's own output
//! (any spacing, trailing commas, Python 2 `3L` longs) because third-party writers differ.

/// A Python literal as it can appear in an npy header.
#[derive(Debug, PartialEq)]
pub(super) enum Value {
    Str(String),
    Bool(bool),
    Int(usize),
    None,
    /// Tuple or list (the distinction never matters here).
    Seq(Vec<Value>),
}

/// Recursive-descent parser for the header dict. Errors are plain strings;
/// the caller attaches the file path and header text.
pub(super) struct DictParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> DictParser<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        DictParser {
            s: text.as_bytes(),
            pos: 0,
        }
    }

    pub(super) fn parse(mut self) -> Result<Vec<(String, Value)>, String> {
        self.expect(b'{')?;
        let mut entries = Vec::new();
        loop {
            if self.eat(b'}') {
                break;
            }
            let key = match self.value()? {
                Value::Str(k) => k,
                other => return Err(format!("dict key {other:?} is not a string")),
            };
            self.expect(b':')?;
            let value = self.value()?;
            entries.push((key, value));
            if !self.eat(b',') {
                self.expect(b'}')?;
                break;
            }
        }
        self.skip_ws();
        if self.pos != self.s.len() {
            return Err(format!(
                "unexpected text after the dict at byte {}",
                self.pos
            ));
        }
        Ok(entries)
    }

    fn skip_ws(&mut self) {
        while self.pos < self.s.len()
            && (self.s[self.pos].is_ascii_whitespace() || self.s[self.pos] == 0)
        {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(match self.peek() {
                Some(found) => format!(
                    "expected '{}' at byte {} but found '{}'",
                    c as char, self.pos, found as char
                ),
                None => format!("expected '{}' but the header ended", c as char),
            })
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            None => Err("header ended where a value was expected".into()),
            Some(q @ (b'\'' | b'"')) => {
                self.pos += 1;
                let start = self.pos;
                while self.pos < self.s.len() && self.s[self.pos] != q {
                    self.pos += 1;
                }
                if self.pos == self.s.len() {
                    return Err("unterminated string".into());
                }
                let text = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
                self.pos += 1;
                Ok(Value::Str(text))
            }
            Some(open @ (b'(' | b'[')) => {
                let close = if open == b'(' { b')' } else { b']' };
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    if self.eat(close) {
                        break;
                    }
                    items.push(self.value()?);
                    if !self.eat(b',') {
                        self.expect(close)?;
                        break;
                    }
                }
                Ok(Value::Seq(items))
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.pos;
                while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
                let n = digits
                    .parse::<usize>()
                    .map_err(|_| format!("integer {digits} does not fit in usize"))?;
                // Python 2 wrote longs as `3L`.
                if self.s.get(self.pos) == Some(&b'L') {
                    self.pos += 1;
                }
                Ok(Value::Int(n))
            }
            Some(_) => {
                for (word, value) in [
                    ("True", Value::Bool(true)),
                    ("False", Value::Bool(false)),
                    ("None", Value::None),
                ] {
                    if self.s[self.pos..].starts_with(word.as_bytes()) {
                        self.pos += word.len();
                        return Ok(value);
                    }
                }
                let rest = String::from_utf8_lossy(&self.s[self.pos..]);
                let token: String = rest.chars().take(12).collect();
                Err(format!("unexpected {token:?} at byte {}", self.pos))
            }
        }
    }
}

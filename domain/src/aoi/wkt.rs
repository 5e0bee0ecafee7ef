//! A small WKT reader for the footprints the catalogues give: `POLYGON` and `MULTIPOLYGON` (with holes),
//! optionally wrapped as EWKT (`SRID=4326;...`) or as the OData literal `geography'SRID=4326;...'`.
//!
//! Points may carry a third and fourth ordinate (`Z`, `M`, `ZM`), which are read and dropped. Anything
//! else (other geometry types, `EMPTY`, trailing text) is an [`AoiError::Wkt`] or
//! [`AoiError::UnsupportedGeometry`] naming the character offset (0-based, in the text as given).

use super::{AoiError, RawPolygon};

/// Parses `text` into raw polygons (rings of `[lon, lat]` points), not yet validated.
pub(super) fn parse(text: &str) -> Result<Vec<RawPolygon>, AoiError> {
    let (body, offset) = unwrap_literal(text)?;
    let mut lexer = Lexer {
        text: body,
        pos: 0,
        offset,
    };
    let keyword = match lexer.next()? {
        Token::Word(word) => word,
        Token::End => return Err(lexer.error_at(lexer.pos, "the text is empty".into())),
        other => {
            return Err(lexer.error_at(
                lexer.pos,
                format!(
                    "expected a geometry keyword (POLYGON or MULTIPOLYGON), found {}",
                    other.describe()
                ),
            ))
        }
    };
    let keyword_upper = keyword.to_ascii_uppercase();
    let multi = match keyword_upper.as_str() {
        "POLYGON" => false,
        "MULTIPOLYGON" => true,
        _ => {
            return Err(AoiError::UnsupportedGeometry {
                kind: keyword_upper,
            })
        }
    };
    // Optional dimension keyword, then the body.
    let mut token_start = lexer.skip_space();
    let mut token = lexer.next()?;
    if let Token::Word(word) = token {
        let upper = word.to_ascii_uppercase();
        match upper.as_str() {
            "Z" | "M" | "ZM" => {
                token_start = lexer.skip_space();
                token = lexer.next()?;
            }
            "EMPTY" => {
                return Err(lexer.error_at(
                    token_start,
                    format!("{keyword_upper} EMPTY: an empty footprint is not accepted"),
                ))
            }
            _ => {
                return Err(lexer.error_at(
                    token_start,
                    format!("expected '(' after {keyword_upper}, found \"{word}\""),
                ))
            }
        }
    }
    if let Token::Word(word) = token {
        if word.eq_ignore_ascii_case("EMPTY") {
            return Err(lexer.error_at(
                token_start,
                format!("{keyword_upper} EMPTY: an empty footprint is not accepted"),
            ));
        }
    }
    lexer.expect_open(token, token_start, "the geometry")?;
    let polygons = if multi {
        let mut polygons = Vec::new();
        loop {
            let start = lexer.skip_space();
            let token = lexer.next()?;
            lexer.expect_open(token, start, "a polygon of the MULTIPOLYGON")?;
            polygons.push(lexer.polygon_body()?);
            if !lexer.comma_or_close("polygons")? {
                break;
            }
        }
        polygons
    } else {
        vec![lexer.polygon_body()?]
    };
    let end = lexer.skip_space();
    match lexer.next()? {
        Token::End => Ok(polygons),
        other => Err(lexer.error_at(
            end,
            format!(
                "unexpected {} after the end of the geometry",
                other.describe()
            ),
        )),
    }
}

/// Strips `geography'...'` and `SRID=4326;`; returns the geometry text and its offset in `text`.
fn unwrap_literal(text: &str) -> Result<(&str, usize), AoiError> {
    let mut body = text;
    let mut offset = 0;
    let leading = body.len() - body.trim_start().len();
    offset += leading;
    body = body[leading..].trim_end();
    const GEOGRAPHY: &str = "geography'";
    if starts_with_ignore_case(body, GEOGRAPHY) {
        let Some(inner) = body[GEOGRAPHY.len()..].strip_suffix('\'') else {
            return Err(AoiError::Wkt {
                position: offset + body.len(),
                reason: "the geography'...' literal is not closed by a quote".into(),
            });
        };
        offset += GEOGRAPHY.len();
        body = inner;
    }
    const SRID: &str = "SRID=";
    if starts_with_ignore_case(body, SRID) {
        let Some(semicolon) = body.find(';') else {
            return Err(AoiError::Wkt {
                position: offset,
                reason: "SRID=... is not followed by ';'".into(),
            });
        };
        let srid = body[SRID.len()..semicolon].trim();
        if srid != "4326" {
            return Err(AoiError::Wkt {
                position: offset + SRID.len(),
                reason: format!(
                    "SRID {srid} is not supported: footprints must be WGS84 lon/lat (SRID=4326)"
                ),
            });
        }
        offset += semicolon + 1;
        body = &body[semicolon + 1..];
    }
    Ok((body, offset))
}

/// `text` starts with the ASCII `prefix`, in any case (never slices inside a UTF-8 character).
fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

#[derive(Debug)]
enum Token<'a> {
    Open,
    Close,
    Comma,
    Word(&'a str),
    Number(&'a str),
    End,
}

impl Token<'_> {
    fn describe(&self) -> String {
        match self {
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
            Token::Comma => "','".into(),
            Token::Word(word) => format!("\"{word}\""),
            Token::Number(number) => format!("the number {number}"),
            Token::End => "the end of the text".into(),
        }
    }
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    /// Offset of `text` in the string the caller gave, for error positions.
    offset: usize,
}

impl<'a> Lexer<'a> {
    fn error_at(&self, pos: usize, reason: String) -> AoiError {
        AoiError::Wkt {
            position: self.offset + pos,
            reason,
        }
    }

    /// Skips white space and returns the position of the next token.
    fn skip_space(&mut self) -> usize {
        let rest = &self.text[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
        self.pos
    }

    fn next(&mut self) -> Result<Token<'a>, AoiError> {
        let start = self.skip_space();
        let rest = &self.text[start..];
        let Some(first) = rest.chars().next() else {
            return Ok(Token::End);
        };
        let simple = match first {
            '(' => Some(Token::Open),
            ')' => Some(Token::Close),
            ',' => Some(Token::Comma),
            _ => None,
        };
        if let Some(token) = simple {
            self.pos += 1;
            return Ok(token);
        }
        let take = |pred: fn(char) -> bool| rest.find(|c: char| !pred(c)).unwrap_or(rest.len());
        if first.is_alphabetic() {
            let len = take(|c| c.is_alphanumeric() || c == '_');
            self.pos += len;
            return Ok(Token::Word(&rest[..len]));
        }
        if first.is_ascii_digit() || matches!(first, '-' | '+' | '.') {
            let len = take(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'));
            self.pos += len;
            return Ok(Token::Number(&rest[..len]));
        }
        Err(self.error_at(start, format!("unexpected character '{first}'")))
    }

    fn expect_open(&self, token: Token<'_>, start: usize, what: &str) -> Result<(), AoiError> {
        match token {
            Token::Open => Ok(()),
            other => Err(self.error_at(
                start,
                format!("expected '(' to open {what}, found {}", other.describe()),
            )),
        }
    }

    /// After an item of a list: `true` on ',' (another item follows), `false` on ')'.
    fn comma_or_close(&mut self, list: &str) -> Result<bool, AoiError> {
        let start = self.skip_space();
        match self.next()? {
            Token::Comma => Ok(true),
            Token::Close => Ok(false),
            other => Err(self.error_at(
                start,
                format!(
                    "expected ',' or ')' in the list of {list}, found {}",
                    other.describe()
                ),
            )),
        }
    }

    /// Reads `(ring), (ring) ...)` after the opening parenthesis of a polygon.
    fn polygon_body(&mut self) -> Result<RawPolygon, AoiError> {
        let mut rings = Vec::new();
        loop {
            let start = self.skip_space();
            let token = self.next()?;
            self.expect_open(token, start, "a ring")?;
            let mut points = Vec::new();
            loop {
                points.push(self.point()?);
                if !self.comma_or_close("points")? {
                    break;
                }
            }
            rings.push(points);
            if !self.comma_or_close("rings")? {
                break;
            }
        }
        Ok(rings)
    }

    /// Reads `lon lat [z [m]]`.
    fn point(&mut self) -> Result<[f64; 2], AoiError> {
        let mut values = Vec::with_capacity(4);
        loop {
            let start = self.skip_space();
            match self.next()? {
                Token::Number(text) => {
                    let value: f64 = text.parse().map_err(|_| {
                        self.error_at(start, format!("\"{text}\" is not a valid number"))
                    })?;
                    if values.len() == 4 {
                        return Err(
                            self.error_at(start, "a point has more than 4 ordinates".into())
                        );
                    }
                    values.push(value);
                }
                Token::Word(word) => {
                    return Err(self.error_at(start, format!("expected a number, found \"{word}\"")))
                }
                _ => {
                    // Not part of the point: step back so the caller sees the token.
                    self.pos = start;
                    break;
                }
            }
        }
        match values[..] {
            [lon, lat, ..] => Ok([lon, lat]),
            _ => Err(self.error_at(
                self.pos,
                format!(
                    "a point needs a longitude and a latitude, found {} number(s)",
                    values.len()
                ),
            )),
        }
    }
}

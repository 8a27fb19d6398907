//! Who is looking, as far as pages care: the language (Japanese first, then the
//! `Accept-Language` order, or the switch's cookie) and the time zone every date is shown in
//! (the browser's, sent by `app.js` in a cookie; UTC, named, until it has).

use actix_web::HttpRequest;
use jiff::tz::TimeZone;

/// Cookie holding the language the switch chose (`ja` or `en`).
pub const LANG_COOKIE: &str = "mamori_lang";
/// Cookie holding the browser's IANA time zone (`Asia/Tokyo`).
pub const TZ_COOKIE: &str = "mamori_tz";

/// A page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// 日本語 (the default: the users are Japanese hospitals).
    Ja,
    /// English.
    En,
}

impl Lang {
    /// The BCP 47 tag for `<html lang>`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    /// The first of `Accept-Language`'s languages we have, by quality; Japanese when none.
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let quality = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = if tag == "ja" || tag.starts_with("ja-") {
                Lang::Ja
            } else if tag == "en" || tag.starts_with("en-") {
                Lang::En
            } else {
                continue;
            };
            if best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, lang));
            }
        }
        best.map(|(_, l)| l).unwrap_or(Lang::Ja)
    }
}

/// The language and time zone of one page view.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Page language.
    pub lang: Lang,
    /// Zone every time is shown in.
    pub tz: TimeZone,
}

impl Viewer {
    /// Reads the switch's and the browser's cookies, then `Accept-Language`.
    pub fn of(request: &HttpRequest) -> Viewer {
        let lang = match request.cookie(LANG_COOKIE).as_ref().map(|c| c.value()) {
            Some("en") => Lang::En,
            Some("ja") => Lang::Ja,
            _ => Lang::from_accept_language(
                request
                    .headers()
                    .get(actix_web::http::header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
            ),
        };
        let tz = request
            .cookie(TZ_COOKIE)
            .and_then(|c| {
                let name = c.value();
                // An IANA name: letters, digits, '/', '_', '-', '+'; anything else is ignored.
                let plausible = name.len() <= 64
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"/_-+".contains(&b));
                plausible.then(|| TimeZone::get(name).ok()).flatten()
            })
            .unwrap_or(TimeZone::UTC);
        Viewer { lang, tz }
    }

    /// `ja` in Japanese pages, `en` in English ones.
    pub fn t<'a>(&self, ja: &'a str, en: &'a str) -> &'a str {
        match self.lang {
            Lang::Ja => ja,
            Lang::En => en,
        }
    }

    /// An RFC 3339 time from the API as the viewer reads it, zone named:
    /// `2026-12-02 18:00 JST (Asia/Tokyo)`. Anything that does not parse is shown as is.
    pub fn time(&self, rfc3339: &str) -> String {
        match rfc3339.parse::<jiff::Timestamp>() {
            Ok(at) => self.at(at),
            Err(_) => rfc3339.to_string(),
        }
    }

    /// A Unix time as [`Viewer::time`] shows it.
    pub fn unix(&self, secs: i64) -> String {
        match jiff::Timestamp::from_second(secs) {
            Ok(at) => self.at(at),
            Err(_) => secs.to_string(),
        }
    }

    fn at(&self, at: jiff::Timestamp) -> String {
        let zoned = at.to_zoned(self.tz.clone());
        let name = self.tz.iana_name().unwrap_or("UTC");
        let abbreviation = zoned.strftime("%Z").to_string();
        if abbreviation == name {
            zoned.strftime("%Y-%m-%d %H:%M ").to_string() + name
        } else {
            format!(
                "{} {abbreviation} ({name})",
                zoned.strftime("%Y-%m-%d %H:%M")
            )
        }
    }

    /// A duration in hours and minutes (`8 時間 30 分` / `8 h 30 min`).
    pub fn duration(&self, secs: i64) -> String {
        let (h, m) = (secs / 3600, (secs % 3600) / 60);
        match self.lang {
            Lang::Ja => format!("{h} 時間 {m} 分"),
            Lang::En => format!("{h} h {m} min"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn japanese_first_then_by_quality() {
        assert_eq!(Lang::from_accept_language(""), Lang::Ja);
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), Lang::En);
        assert_eq!(Lang::from_accept_language("en;q=0.5,ja;q=0.8"), Lang::Ja);
        assert_eq!(Lang::from_accept_language("fr,de"), Lang::Ja);
    }

    #[test]
    fn times_name_their_zone() {
        let tokyo = Viewer {
            lang: Lang::Ja,
            tz: TimeZone::get("Asia/Tokyo").unwrap(),
        };
        assert_eq!(
            tokyo.time("2026-12-02T09:00:00Z"),
            "2026-12-02 18:00 JST (Asia/Tokyo)"
        );
        let utc = Viewer {
            lang: Lang::En,
            tz: TimeZone::UTC,
        };
        assert_eq!(utc.time("2026-12-02T09:00:00Z"), "2026-12-02 09:00 UTC");
        assert_eq!(utc.time("garbage"), "garbage");
        assert_eq!(utc.duration(8 * 3600 + 30 * 60), "8 h 30 min");
    }
}

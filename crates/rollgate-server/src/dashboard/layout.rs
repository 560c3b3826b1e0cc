//! The page shell and the small pieces every page uses. maud escapes every
//! value it prints, so names, reasons and model outputs show as text.

use super::Signed;
use crate::api::problem::ApiError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

/// A whole page: header with who is signed in, then `body`.
pub fn page(title: &str, signed: Option<&Signed>, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · rollgate" }
                link rel="stylesheet" href="/assets/dashboard.css";
                link rel="stylesheet" href="/assets/uPlot.min.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "rollgate" }
                    nav { a href="/" { "Overview" } " " a href="/audit" { "Audit" } }
                    @if let Some(signed) = signed {
                        div.who {
                            span { "Signed in as " strong { (signed.actor.name) } " (" (roles(signed)) ")" }
                            form method="post" action="/sign-out" {
                                (csrf_field(signed))
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main { (body) }
                script src="/assets/uPlot.iife.min.js" defer {}
                script src="/assets/dashboard.js" defer {}
            }
        }
    };
    html_response(StatusCode::OK, markup)
}

pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    // Pages show live state and a person's session: never cached, never framed.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

fn roles(signed: &Signed) -> String {
    signed.actor.roles.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

pub fn csrf_field(signed: &Signed) -> Markup {
    html! { input type="hidden" name="csrf" value=(signed.csrf); }
}

/// A refused or failed action, as a page: the API's own words, and the gates when it names them.
pub fn refusal(signed: Option<&Signed>, error: &ApiError, back: &str) -> Response {
    let body = html! {
        section.refusal role="alert" {
            h1 { "Refused: " (error.title) }
            p { (error.detail) }
            @if let Some(gates) = &error.gates {
                ul { @for g in gates { li { strong { (g.gate) } " " (status_badge(&g.status)) " " (g.detail) } } }
            }
            p { a href=(back) { "Back" } " · " a href="/audit" { "Verify the audit log" } }
        }
    };
    let mut response = page("Refused", signed, body);
    *response.status_mut() = error.status;
    response
}

/// passed / failed / pending, as a coloured word.
pub fn status_badge(status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (status) } }
}

/// "3 min 20 s", "2 h 5 min", "40 s".
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// Percent-encodes a path for a query parameter.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(char::from(byte)),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(40.2), "40 s");
        assert_eq!(duration(200.0), "3 min 20 s");
        assert_eq!(duration(7_500.0), "2 h 5 min");
        assert_eq!(duration(-3.0), "0 s");
    }

    #[test]
    fn a_next_path_is_encoded_for_a_query() {
        assert_eq!(url_encode("/rollouts/a b?x=1&y"), "/rollouts/a%20b%3Fx%3D1%26y");
    }
}

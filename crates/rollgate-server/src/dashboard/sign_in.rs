//! Signing in with an API token, and out.

use super::layout::{page, refusal};
use super::session::{clear_cookie, same_origin, set_cookie};
use super::{Dashboard, Signed, now_unix};
use crate::api::calls;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct Next {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

/// Only a path on this server: never `//elsewhere` or a full URL.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => path,
        _ => "/",
    }
}

fn form_markup(next: &str, problem: Option<&str>) -> Markup {
    html! {
        section.sign-in {
            h1 { "Sign in" }
            p { "Paste an API token (from " code { "rollgate token create --name you --role viewer" } "). \
                 It is kept in a cookie this page's scripts cannot read, for 8 hours." }
            @if let Some(problem) = problem { p.problem role="alert" { (problem) } }
            form method="post" action="/sign-in" {
                input type="hidden" name="next" value=(next);
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
        }
    }
}

pub async fn form(Query(next): Query<Next>) -> Response {
    page("Sign in", None, form_markup(safe_next(next.next.as_deref()), None))
}

pub async fn submit(State(dashboard): State<Dashboard>, headers: HeaderMap, Form(form): Form<SignInForm>) -> Response {
    let next = safe_next(form.next.as_deref()).to_string();
    if !same_origin(&headers) {
        let body = form_markup(&next, Some("this sign-in came from another site and was refused"));
        return with_status(StatusCode::FORBIDDEN, page("Sign in", None, body));
    }
    let token = form.token.trim();
    match calls::sign_in(&dashboard.app, token).await {
        Ok(_) => {
            let value = dashboard.key.seal(token, now_unix());
            let mut response = Redirect::to(&next).into_response();
            if let Ok(cookie) = HeaderValue::from_str(&set_cookie(&value)) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(error) => {
            let body = form_markup(&next, Some(&error.detail));
            with_status(StatusCode::UNAUTHORIZED, page("Sign in", None, body))
        }
    }
}

pub async fn sign_out(signed: Signed, headers: HeaderMap, Form(form): Form<SignOutForm>) -> Response {
    if let Err(error) = signed.check_post(&headers, &form.csrf) {
        return refusal(Some(&signed), &error, "/");
    }
    let mut response = Redirect::to("/sign-in").into_response();
    if let Ok(cookie) = HeaderValue::from_str(&clear_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

fn with_status(status: StatusCode, mut response: Response) -> Response {
    *response.status_mut() = status;
    response
}

//! A request as a handler reads it.

/// A request the host routed to one of the app's routes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    /// Upper case: `GET`, `HEAD`, `POST`...
    pub method: String,
    /// The path without the query, percent-encoding kept.
    pub path: String,
    /// The raw query string without the `?`.
    pub query_string: String,
    /// The headers as the host sends them: a `name: value` line each,
    /// names lower case; read them with [`Request::header`] and
    /// [`Request::headers`], which allocate nothing.
    pub(crate) headers: String,
    pub body: Vec<u8>,
    /// The route template's `{name}` segments and what they matched, as
    /// the host's router matched them.
    pub(crate) params: Vec<(String, String)>,
}

impl Request {
    /// The first value of the query parameter `name`, decoded as Flask's
    /// `request.args` decodes it (`%XX`, `+` is a space); none when absent.
    pub fn query(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query_string.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    /// The first value of the header `name`, whatever its case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every header, names lower case, in the order they came.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .lines()
            .filter_map(|line| line.split_once(": "))
    }

    /// The path segment the route's `{name}` matched (`/users/{id}` on
    /// `/users/7`: `param("id")` is `"7"`), percent-encoding kept.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

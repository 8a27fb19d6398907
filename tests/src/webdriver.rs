//! A small blocking W3C WebDriver client for the console tests: starts Debian's `chromedriver`
//! with `chromium` headless (nothing downloads a browser), and speaks the protocol's JSON over
//! HTTP. Only what the tests use: navigate, find, type, click, read the page, run a script,
//! cookies and screenshots.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The W3C key of an element reference in a WebDriver answer.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Why the browser tests cannot run here, if they cannot.
pub fn missing() -> Option<String> {
    for path in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        if !Path::new(path).exists() {
            return Some(format!(
                "{path} is missing (Debian: apt-get install chromium chromium-driver)"
            ));
        }
    }
    None
}

/// A chromedriver process and one browser session in it.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
    shots: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts chromedriver and a headless chromium in time zone `tz` and language `lang`,
    /// accepting the test server's certificate; screenshots go to `shots`.
    pub fn start(tz: &str, lang: &str, shots: &Path) -> Browser {
        let port = crate::free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .env("TZ", tz)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http
                .get(format!("{base}/status"))
                .send()
                .ok()
                .and_then(|r| r.json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not get ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap().keep();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--ignore-certificate-errors",
                         "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests",
                         "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", format!("--lang={lang}"),
                         format!("--user-data-dir={}", profile.display())],
                "prefs": {"intl.accept_languages": lang}
            }
        }}});
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {answer}"))
            .to_string();
        std::fs::create_dir_all(shots).unwrap();
        Browser {
            driver,
            base,
            session,
            http,
            shots: shots.to_path_buf(),
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().unwrap().json().unwrap();
        if let Some(error) = answer["value"].get("error") {
            panic!("WebDriver {path}: {error}: {}", answer["value"]["message"]);
        }
        answer["value"].clone()
    }

    /// Opens `url` and waits for the page to load.
    pub fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })));
    }

    /// The address shown.
    pub fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The page's HTML as the browser has it now.
    pub fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Runs `script` (a function body) with `args`; its return value.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Runs `script`, which calls its last argument with the result when done (promises).
    pub fn script_async(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
    }

    fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let url = format!("{}/session/{}/element", self.base, self.session);
            let answer: Value = self
                .http
                .post(&url)
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .unwrap()
                .json()
                .unwrap();
            if let Some(id) = answer["value"][ELEMENT].as_str() {
                return id.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no element {css} ({answer}) on {}:\n{}",
                self.url(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Types `text` into the element `css` selects.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Sets a form field's value directly (date pickers, long pasted text).
    pub fn set_value(&self, css: &str, value: &str) {
        self.find(css);
        self.script(
            "document.querySelector(arguments[0]).value = arguments[1];",
            json!([css, value]),
        );
    }

    /// Clicks the element `css` selects.
    pub fn click(&self, css: &str) {
        let id = self.find(css);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        );
    }

    /// Waits until the page's HTML contains `text`; the HTML.
    pub fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let html = self.source();
            if html.contains(text) {
                return html;
            }
            assert!(
                Instant::now() < deadline,
                "{text:?} never appeared on {}:\n{html}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `expression` (JavaScript) is true on the page.
    pub fn wait_until(&self, expression: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.script(&format!("return !!({expression});"), json!([])) != json!(true) {
            assert!(
                Instant::now() < deadline,
                "{expression} never held on {}:\n{}",
                self.url(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Moves into the page's `index`th frame (WebDriver may look into any frame, whatever its
    /// origin), or back to the top page with `None`.
    pub fn frame(&self, index: Option<u32>) {
        match index {
            Some(i) => self.call(reqwest::Method::POST, "/frame", Some(json!({ "id": i }))),
            None => self.call(reqwest::Method::POST, "/frame", Some(json!({ "id": null }))),
        };
    }

    /// The value of the cookie `name` (HttpOnly ones too: the driver sees them all).
    pub fn cookie(&self, name: &str) -> Option<String> {
        let url = format!("{}/session/{}/cookie/{name}", self.base, self.session);
        let answer: Value = self.http.get(url).send().ok()?.json().ok()?;
        answer["value"]["value"].as_str().map(str::to_string)
    }

    /// Saves a PNG of the page as `<name>.png` in the screenshot folder.
    pub fn screenshot(&self, name: &str) {
        use base64::Engine;
        let data = self.call(reqwest::Method::GET, "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }
}

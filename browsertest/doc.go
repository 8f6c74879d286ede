// Package browsertest drives the operator's console in a real headless
// Chromium (Debian's chromium package) through chromedp. It is a module of
// its own so that the browser driver never becomes a requirement of the
// receiver's module. The tests skip when no Chromium is found, unless
// LKWEBHOOK_E2E_REQUIRED is set (.ci/run sets it and installs chromium).
// LKWEBHOOK_SCREENSHOTS=1 writes the README's screenshots into ../docs.
package browsertest

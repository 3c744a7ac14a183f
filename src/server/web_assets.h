// WebAsset: the files of the web chat page (web/ in the source tree), built
// into the binary by cmake/embed_web_assets.cmake, so `strata serve` needs
// nothing beside it and fetches nothing at run time.
//
// Serving them: GET (and HEAD) of "/" or "/<name>" answers FindWebAsset(path)
// with its content_type and bytes, status 200, plus every header of
// kWebAssetHeaders; no asset: 404. No API key is needed: the page holds no
// data, and asks for the key when the API answers 401.
//
// Thread-safety: immutable static data.
#pragma once

#include <span>
#include <string_view>
#include <utility>

namespace strata::server {

struct WebAsset {
  std::string_view path;          // URL path, e.g. "/app.js"
  std::string_view content_type;  // e.g. "text/javascript; charset=utf-8"
  std::string_view bytes;         // the file's contents
};

// Every asset, sorted by path (generated from web/).
std::span<const WebAsset> WebAssets();

// The asset served at path ("/" is "/index.html"); nullptr if there is none.
// The path is matched exactly: no query string, no decoding, no "..".
const WebAsset* FindWebAsset(std::string_view path);

// Headers of every asset response. The page loads only its own files (no
// inline script or style), so the CSP allows 'self' alone; it cannot be
// framed; browsers revalidate it, so an upgraded server serves the new page.
inline constexpr std::pair<std::string_view, std::string_view> kWebAssetHeaders[] = {
    {"Content-Security-Policy", "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"},
    {"X-Content-Type-Options", "nosniff"},
    {"X-Frame-Options", "DENY"},
    {"Referrer-Policy", "no-referrer"},
    {"Cache-Control", "no-cache"},
};

}  // namespace strata::server

// The web chat page's assets (server/web_assets.h) and how the server serves
// them. The page itself is tested in a browser by tests/web/.
#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>

#include "server/web_assets.h"
#include "server_harness.h"

namespace strata::testing {
namespace {

using nlohmann::json;
using server::FindWebAsset;
using server::WebAsset;

std::string Asset(std::string_view path) {
  const WebAsset* a = FindWebAsset(path);
  return a != nullptr ? std::string(a->bytes) : std::string();
}

TEST(WebAssetsTest, RootIsTheIndexAndEveryFileHasItsType) {
  ASSERT_NE(FindWebAsset("/"), nullptr);
  EXPECT_EQ(FindWebAsset("/"), FindWebAsset("/index.html"));
  EXPECT_EQ(FindWebAsset("/")->content_type, "text/html; charset=utf-8");
  EXPECT_EQ(FindWebAsset("/app.js")->content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(FindWebAsset("/style.css")->content_type, "text/css; charset=utf-8");
  EXPECT_EQ(FindWebAsset("/favicon.svg")->content_type, "image/svg+xml");
  EXPECT_TRUE(Asset("/").starts_with("<!doctype html>"));
  for (const WebAsset& a : server::WebAssets()) {
    EXPECT_FALSE(a.bytes.empty()) << a.path;
    EXPECT_EQ(a.path.find('/', 1), std::string_view::npos) << a.path;
  }
}

TEST(WebAssetsTest, ExactPathsOnly) {
  for (const char* path : {"", "index.html", "/index.html?x=1", "/../index.html", "//index.html", "/INDEX.HTML",
                           "/index.html/", "/app.js%00", "/nope", "/web/app.js"})
    EXPECT_EQ(FindWebAsset(path), nullptr) << path;
}

// The CSP allows only the page's own files: no inline scripts, event handler
// attributes or style attributes, and every referenced file is served.
TEST(WebAssetsTest, IndexReferencesOnlyServedFilesAndNothingInline) {
  const std::string html = Asset("/");
  EXPECT_EQ(html.find("style="), std::string::npos);
  EXPECT_EQ(html.find("<style"), std::string::npos);
  EXPECT_FALSE(std::regex_search(html, std::regex(R"(\son[a-z]+\s*=)", std::regex::icase)));
  const std::regex script(R"(<script([^>]*)>)");
  int scripts = 0;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), script); it != std::sregex_iterator(); ++it, ++scripts)
    EXPECT_NE((*it)[1].str().find("src="), std::string::npos) << "inline script: " << it->str();
  EXPECT_GE(scripts, 1);
  const std::regex ref(R"re((?:src|href)="([^"]*)")re");
  std::set<std::string> refs;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), ref); it != std::sregex_iterator(); ++it)
    refs.insert((*it)[1].str());
  EXPECT_TRUE(refs.count("/app.js") && refs.count("/style.css")) << "the page's own files";
  for (const std::string& r : refs) EXPECT_NE(FindWebAsset(r), nullptr) << r << " is not served (or not local)";
  // Text from the model is shown as text, never parsed as HTML.
  EXPECT_EQ(Asset("/app.js").find("innerHTML"), std::string::npos);
  EXPECT_EQ(Asset("/app.js").find("eval("), std::string::npos);
}

TEST(ServerWebTest, ServesThePageWithSecurityHeadersAndNoKey) {
  server::ServerOptions o;
  o.api_key = "page-key";
  ServerHarness h(o);
  auto c = h.Client();
  for (const WebAsset& a : server::WebAssets()) {
    auto r = c->Get(std::string(a.path));
    ASSERT_TRUE(r) << a.path;
    EXPECT_EQ(r->status, 200) << a.path;
    EXPECT_EQ(r->body, a.bytes) << a.path;
    EXPECT_EQ(r->get_header_value("Content-Type"), a.content_type) << a.path;
    for (const auto& [name, value] : server::kWebAssetHeaders)
      EXPECT_EQ(r->get_header_value(std::string(name).c_str()), value) << a.path << " " << name;
  }
  auto root = c->Get("/");
  ASSERT_TRUE(root);
  EXPECT_EQ(root->status, 200);
  EXPECT_EQ(root->body, Asset("/index.html"));
  EXPECT_EQ(root->get_header_value("Content-Security-Policy").rfind("default-src 'self'", 0), 0u);
  // The page is public; the API it calls is not.
  EXPECT_EQ(c->Get("/v1/models")->status, 401);
}

TEST(ServerWebTest, UnknownFileIs404WithAnErrorBody) {
  ServerHarness h;
  auto c = h.Client();
  for (const char* path : {"/nope.html", "/favicon.ico", "/index.html/x"}) {
    auto r = c->Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 404) << path;
    EXPECT_EQ(json::parse(r->body)["error"]["code"], "not_found") << path;
  }
  // The API's routes are not shadowed by the page's.
  EXPECT_EQ(c->Get("/health")->status, 200);
  EXPECT_EQ(c->Get("/metrics")->status, 200);
  EXPECT_EQ(c->Get("/v1/models")->status, 200);
}

}  // namespace
}  // namespace strata::testing

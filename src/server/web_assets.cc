#include "server/web_assets.h"

namespace strata::server {

const WebAsset* FindWebAsset(std::string_view path) {
  if (path == "/") path = "/index.html";
  for (const WebAsset& asset : WebAssets())
    if (asset.path == path) return &asset;
  return nullptr;
}

}  // namespace strata::server

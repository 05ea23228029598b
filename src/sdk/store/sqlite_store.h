// SQLite implementation of Store (internal; use Store::open).
#pragma once

#include <memory>
#include <string>

#include "sdk/store/store.h"

namespace herald::sdk::detail {

Result<std::unique_ptr<Store>> open_sqlite(std::string url, std::string path,
                                           const StoreOptions& options);

}  // namespace herald::sdk::detail

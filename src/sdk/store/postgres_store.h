// PostgreSQL (libpq) implementation of Store (internal; use Store::open).
#pragma once

#include <memory>
#include <string>

#include "sdk/store/store.h"

namespace herald::sdk::detail {

Result<std::unique_ptr<Store>> open_postgres(std::string url, const StoreOptions& options);

}  // namespace herald::sdk::detail

// bulkhead-open-disposable FILE [CMD] and the built-in service bulkhead.OpenInDisposable.
#pragma once

#include <string>
#include <vector>

namespace bulkhead::agent {

// bulkhead-open-disposable [--view-only] [--template T] FILE [CMD...]
int open_disposable_main(std::vector<std::string> const& args);

// The service in the disposable: the request on stdin, the answer on stdout (opener.hpp).
int open_disposable_service();

} // namespace bulkhead::agent

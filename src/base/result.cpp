#include "base/result.hpp"

#include <cstring>

namespace bulkhead {

namespace {

std::string errno_name(int err)
{
    char const* name = strerrorname_np(err);
    if (name == nullptr)
        return "errno " + std::to_string(err);
    return std::string(name) + " (" + strerror(err) + ")";
}

} // namespace

Error Error::from_syscall(std::string_view call, int err)
{
    return Error(std::string(call) + ": " + errno_name(err), err);
}

Error Error::from_syscall(std::string_view call, std::string_view object, int err)
{
    return Error(std::string(call) + " " + std::string(object) + ": " + errno_name(err), err);
}

Error Error::from_message(std::string message)
{
    return Error(std::move(message), 0);
}

Error&& Error::with_context(std::string_view context) &&
{
    m_message = std::string(context) + ": " + m_message;
    return std::move(*this);
}

} // namespace bulkhead

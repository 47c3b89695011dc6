// Result<T>: the one error-carrying return type of bulkhead. No exceptions in our own code.
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace bulkhead {

class [[nodiscard]] Error {
public:
    // A failed system call: keeps the call's name and errno.
    static Error from_syscall(std::string_view call, int err);
    // A failed system call on a named object, e.g. ("open", "/etc/x", ENOENT).
    static Error from_syscall(std::string_view call, std::string_view object, int err);
    static Error from_message(std::string message);

    // Adds context on the way up: "mounting /home: pivot_root: EINVAL".
    Error&& with_context(std::string_view context) &&;

    int code() const { return m_errno; }
    std::string const& message() const { return m_message; }

private:
    Error(std::string message, int err) : m_message(std::move(message)), m_errno(err) {}
    std::string m_message;
    int m_errno = 0;
};

template<typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : m_value(std::move(value)) {}
    Result(Error error) : m_value(std::move(error)) {}

    bool has_value() const { return m_value.index() == 0; }
    bool is_error() const { return !has_value(); }
    explicit operator bool() const { return has_value(); }

    T& value() & { return std::get<0>(m_value); }
    T const& value() const& { return std::get<0>(m_value); }
    T&& value() && { return std::get<0>(std::move(m_value)); }
    T release_value() { return std::get<0>(std::move(m_value)); }

    Error const& error() const& { return std::get<1>(m_value); }
    Error release_error() { return std::get<1>(std::move(m_value)); }

    T* operator->() { return &value(); }
    T& operator*() { return value(); }

private:
    std::variant<T, Error> m_value;
};

template<>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : m_error(std::move(error)), m_failed(true) {}

    bool has_value() const { return !m_failed; }
    bool is_error() const { return m_failed; }
    explicit operator bool() const { return !m_failed; }
    void release_value() {}

    Error const& error() const& { return m_error; }
    Error release_error() { return std::move(m_error); }

private:
    Error m_error = Error::from_message({});
    bool m_failed = false;
};

using Status = Result<void>;

// Converts a raw syscall return (-1 + errno) into a Status.
inline Status check_syscall(long rc, std::string_view call)
{
    if (rc < 0)
        return Error::from_syscall(call, errno);
    return {};
}

} // namespace bulkhead

// TRY(expr): evaluate a Result; on error return it from the enclosing function, else yield the value.
#define TRY(expr)                                                                                                      \
    ({                                                                                                                 \
        auto _bh_result = (expr);                                                                                      \
        if (_bh_result.is_error())                                                                                     \
            return _bh_result.release_error();                                                                         \
        _bh_result.release_value();                                                                                    \
    })

// TRY_CTX(expr, ctx): like TRY, adding context to the error on the way up.
#define TRY_CTX(expr, ctx)                                                                                             \
    ({                                                                                                                 \
        auto _bh_result = (expr);                                                                                      \
        if (_bh_result.is_error())                                                                                     \
            return _bh_result.release_error().with_context(ctx);                                                       \
        _bh_result.release_value();                                                                                    \
    })

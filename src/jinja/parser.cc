#include "jinja/parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>
#include <string_view>

namespace strata::jinja {
namespace {

using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using EndTokens = std::initializer_list<std::string_view>;

ExprPtr NewExpr(Expr::Kind kind, int line) { return std::make_unique<Expr>(kind, line); }

// Marks which of the names a macro may catch the body reads.
void ScanNames(const Expr* e, Signature* sig);
void ScanNames(const Body& body, Signature* sig);

void ScanNames(const Expr* e, Signature* sig) {
  if (e == nullptr) return;
  if (e->kind == Expr::Kind::kName) {
    sig->catch_varargs |= e->name == "varargs";
    sig->catch_kwargs |= e->name == "kwargs";
    sig->uses_caller |= e->name == "caller";
  }
  ScanNames(e->operand.get(), sig);
  ScanNames(e->arg.get(), sig);
  for (const ExprPtr& x : e->items) ScanNames(x.get(), sig);
  for (const ExprPtr& x : e->args) ScanNames(x.get(), sig);
  for (const auto& kw : e->kwargs) ScanNames(kw.second.get(), sig);
  ScanNames(e->dyn_args.get(), sig);
  ScanNames(e->dyn_kwargs.get(), sig);
}

void ScanNames(const Body& body, Signature* sig) {
  for (const StmtPtr& s : body) {
    for (const ExprPtr& x : s->exprs) ScanNames(x.get(), sig);
    for (const ExprPtr& x : s->targets) ScanNames(x.get(), sig);
    for (const Expr* x : {s->test.get(), s->target.get(), s->iter.get(), s->expr.get()}) ScanNames(x, sig);
    for (const ExprPtr& x : s->signature.defaults) ScanNames(x.get(), sig);
    ScanNames(s->body, sig);
    ScanNames(s->else_body, sig);
  }
}

bool CanAssign(const Expr& e) {
  if (e.kind == Expr::Kind::kName) return true;
  if (e.kind != Expr::Kind::kTuple) return false;
  return std::all_of(e.items.begin(), e.items.end(), [](const ExprPtr& x) { return CanAssign(*x); });
}

class Parser {
 public:
  Parser(std::vector<Token> tokens, int max_depth) : t_(std::move(tokens)), max_depth_(max_depth) {}

  Status Run(Body* out) {
    STRATA_RETURN_IF_ERROR(Subparse({}, out));
    if (cur().type != TokenType::kEof) return Fail("unexpected token");
    return Status::Ok();
  }

 private:
  // ---- token stream
  const Token& cur() const { return t_[pos_]; }
  const Token& look() const { return t_[std::min(pos_ + 1, t_.size() - 1)]; }
  void Next() {
    if (pos_ + 1 < t_.size()) ++pos_;
  }
  bool IsName(std::string_view v) const { return cur().type == TokenType::kName && cur().value == v; }
  bool IsOp(std::string_view op) const { return cur().type == TokenType::kOperator && cur().value == op; }
  bool SkipName(std::string_view v) {
    if (!IsName(v)) return false;
    Next();
    return true;
  }
  bool SkipOp(std::string_view op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }

  static std::string Describe(const Token& t) {
    switch (t.type) {
      case TokenType::kData: return "template data / text";
      case TokenType::kVariableBegin: return "begin of print statement";
      case TokenType::kVariableEnd: return "end of print statement";
      case TokenType::kBlockBegin: return "begin of statement block";
      case TokenType::kBlockEnd: return "end of statement block";
      case TokenType::kEof: return "end of template";
      case TokenType::kString: return "string";
      case TokenType::kInteger: return "integer";
      case TokenType::kFloat: return "float";
      default: return t.value;
    }
  }

  Status Fail(const std::string& message) const {
    return Status::InvalidArgument(fmt::format("line {}: {}", cur().line, message));
  }
  Status Expected(std::string_view what) const {
    if (cur().type == TokenType::kEof) return Fail(fmt::format("unexpected end of template, expected '{}'", what));
    return Fail(fmt::format("expected token '{}', got '{}'", what, Describe(cur())));
  }
  Status Expect(TokenType type, std::string_view what) {
    if (cur().type != type) return Expected(what);
    Next();
    return Status::Ok();
  }
  Status ExpectOp(std::string_view op) {
    if (!SkipOp(op)) return Expected(op);
    return Status::Ok();
  }
  Status ExpectName(std::string* out) {
    if (cur().type != TokenType::kName) return Expected("name");
    *out = cur().value;
    Next();
    return Status::Ok();
  }

  // Bounds the recursion of the parser itself (nested expressions/blocks).
  class DepthGuard {
   public:
    explicit DepthGuard(Parser* p) : p_(p) { ++p_->depth_; }
    ~DepthGuard() { --p_->depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;

   private:
    Parser* p_;
  };
  Status CheckDepth() const {
    if (depth_ > max_depth_) return Fail(fmt::format("template nested too deeply (limit {})", max_depth_));
    return Status::Ok();
  }

  // Records the depth of a node just built from its children and refuses
  // trees deeper than max_depth (chains like a+b+c+... nest too: the tree
  // is walked and destroyed recursively).
  Status Seal(Expr* e) const {
    int deepest = 0;
    auto see = [&deepest](const ExprPtr& x) {
      if (x) deepest = std::max(deepest, x->depth);
    };
    see(e->operand);
    see(e->arg);
    see(e->dyn_args);
    see(e->dyn_kwargs);
    for (const ExprPtr& x : e->items) see(x);
    for (const ExprPtr& x : e->args) see(x);
    for (const auto& kw : e->kwargs) see(kw.second);
    e->depth = deepest + 1;
    if (e->depth > max_depth_) return Fail(fmt::format("template nested too deeply (limit {})", max_depth_));
    return Status::Ok();
  }

  // ---- statements
  Status Subparse(EndTokens end, Body* out) {
    DepthGuard guard(this);
    STRATA_RETURN_IF_ERROR(CheckDepth());
    StmtPtr output;
    auto flush = [&] {
      if (output) out->push_back(std::move(output));
    };
    auto add_output = [&](ExprPtr e) {
      if (!output) output = std::make_unique<Stmt>(Stmt::Kind::kOutput, e->line);
      output->exprs.push_back(std::move(e));
    };
    while (cur().type != TokenType::kEof) {
      const Token& tok = cur();
      if (tok.type == TokenType::kData) {
        ExprPtr data = NewExpr(Expr::Kind::kConst, tok.line);
        data->value = Value::String(tok.value);
        add_output(std::move(data));
        Next();
      } else if (tok.type == TokenType::kVariableBegin) {
        Next();
        ExprPtr e;
        STRATA_RETURN_IF_ERROR(ParseTuple(false, true, {}, false, &e));
        STRATA_RETURN_IF_ERROR(Expect(TokenType::kVariableEnd, "end of print statement"));
        add_output(std::move(e));
      } else if (tok.type == TokenType::kBlockBegin) {
        flush();
        Next();
        for (std::string_view e : end)
          if (IsName(e)) return Status::Ok();
        STRATA_RETURN_IF_ERROR(ParseStatement(end, out));
        STRATA_RETURN_IF_ERROR(Expect(TokenType::kBlockEnd, "end of statement block"));
      } else {
        return Fail(fmt::format("unexpected '{}'", Describe(tok)));
      }
    }
    flush();
    if (end.size() != 0) {
      std::string names;
      for (std::string_view e : end) names += (names.empty() ? "'" : " or '") + std::string(e) + "'";
      return Fail(fmt::format("unexpected end of template; looking for {}", names));
    }
    return Status::Ok();
  }

  // The body up to one of end (a tag name), which is left current.
  Status Statements(EndTokens end, Body* out) {
    SkipOp(":");
    STRATA_RETURN_IF_ERROR(Expect(TokenType::kBlockEnd, "end of statement block"));
    return Subparse(end, out);
  }
  // Same, then consumes the end tag name.
  Status StatementsDrop(EndTokens end, Body* out) {
    STRATA_RETURN_IF_ERROR(Statements(end, out));
    Next();
    return Status::Ok();
  }

  Status ParseStatement(EndTokens enclosing, Body* out) {
    if (cur().type != TokenType::kName) return Fail("tag name expected");
    const std::string tag = cur().value;
    const int line = cur().line;
    StmtPtr s;
    if (tag == "for") {
      STRATA_RETURN_IF_ERROR(ParseFor(&s));
    } else if (tag == "if") {
      STRATA_RETURN_IF_ERROR(ParseIf(&s));
    } else if (tag == "set") {
      STRATA_RETURN_IF_ERROR(ParseSet(&s));
    } else if (tag == "macro") {
      STRATA_RETURN_IF_ERROR(ParseMacro(&s));
    } else if (tag == "call") {
      STRATA_RETURN_IF_ERROR(ParseCallBlock(&s));
    } else if (tag == "filter") {
      Next();
      s = std::make_unique<Stmt>(Stmt::Kind::kFilterBlock, line);
      STRATA_RETURN_IF_ERROR(ParseFilter(nullptr, true, &s->expr));
      STRATA_RETURN_IF_ERROR(StatementsDrop({"endfilter"}, &s->body));
    } else if (tag == "with") {
      STRATA_RETURN_IF_ERROR(ParseWith(&s));
    } else if (tag == "print") {
      Next();
      s = std::make_unique<Stmt>(Stmt::Kind::kOutput, line);
      while (cur().type != TokenType::kBlockEnd) {
        if (!s->exprs.empty()) STRATA_RETURN_IF_ERROR(ExpectOp(","));
        ExprPtr e;
        STRATA_RETURN_IF_ERROR(ParseExpression(true, &e));
        s->exprs.push_back(std::move(e));
      }
    } else if (tag == "block") {
      Next();
      s = std::make_unique<Stmt>(Stmt::Kind::kScope, line);
      STRATA_RETURN_IF_ERROR(ExpectName(&s->name));
      SkipName("scoped");
      SkipName("required");
      STRATA_RETURN_IF_ERROR(StatementsDrop({"endblock"}, &s->body));
      SkipName(s->name);
    } else if (tag == "generation") {
      Next();
      s = std::make_unique<Stmt>(Stmt::Kind::kScope, line);
      STRATA_RETURN_IF_ERROR(StatementsDrop({"endgeneration"}, &s->body));
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) return Fail(fmt::format("'{}' outside of a loop", tag));
      Next();
      s = std::make_unique<Stmt>(tag == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue, line);
    } else if (tag == "extends" || tag == "include" || tag == "import" || tag == "from") {
      return Fail(fmt::format("'{}' is not supported: a chat template cannot load other templates", tag));
    } else if (tag == "autoescape") {
      return Fail("'autoescape' is not supported");
    } else {
      std::string message = fmt::format("Encountered unknown tag '{}'.", tag);
      if (enclosing.size() != 0) {
        std::string names;
        for (std::string_view e : enclosing) names += (names.empty() ? "'" : " or '") + std::string(e) + "'";
        message += fmt::format(" Jinja was looking for the following tags: {}.", names);
      }
      return Fail(message);
    }
    out->push_back(std::move(s));
    return Status::Ok();
  }

  Status ParseFor(StmtPtr* out) {
    auto s = std::make_unique<Stmt>(Stmt::Kind::kFor, cur().line);
    Next();
    STRATA_RETURN_IF_ERROR(ParseAssignTarget(false, {"in"}, &s->target));
    if (!SkipName("in")) return Expected("in");
    STRATA_RETURN_IF_ERROR(ParseTuple(false, false, {"recursive"}, false, &s->iter));
    if (SkipName("if")) STRATA_RETURN_IF_ERROR(ParseExpression(true, &s->test));
    s->recursive = SkipName("recursive");
    ++loop_depth_;
    Status st = Statements({"endfor", "else"}, &s->body);
    --loop_depth_;
    STRATA_RETURN_IF_ERROR(st);
    const bool has_else = IsName("else");
    Next();
    if (has_else) STRATA_RETURN_IF_ERROR(StatementsDrop({"endfor"}, &s->else_body));
    *out = std::move(s);
    return Status::Ok();
  }

  Status ParseIf(StmtPtr* out) {
    auto s = std::make_unique<Stmt>(Stmt::Kind::kIf, cur().line);
    Next();
    STRATA_RETURN_IF_ERROR(ParseTuple(false, false, {}, false, &s->test));
    STRATA_RETURN_IF_ERROR(Statements({"elif", "else", "endif"}, &s->body));
    if (IsName("elif")) {
      // elif chains nest as an if in the else branch.
      StmtPtr inner;
      STRATA_RETURN_IF_ERROR(ParseIf(&inner));
      s->else_body.push_back(std::move(inner));
      *out = std::move(s);
      return Status::Ok();
    }
    const bool has_else = IsName("else");
    Next();
    if (has_else) STRATA_RETURN_IF_ERROR(StatementsDrop({"endif"}, &s->else_body));
    *out = std::move(s);
    return Status::Ok();
  }

  Status ParseSet(StmtPtr* out) {
    const int line = cur().line;
    Next();
    ExprPtr target;
    STRATA_RETURN_IF_ERROR(ParseAssignTarget(true, {}, &target));
    if (SkipOp("=")) {
      auto s = std::make_unique<Stmt>(Stmt::Kind::kAssign, line);
      s->target = std::move(target);
      STRATA_RETURN_IF_ERROR(ParseTuple(false, true, {}, false, &s->expr));
      *out = std::move(s);
      return Status::Ok();
    }
    auto s = std::make_unique<Stmt>(Stmt::Kind::kAssignBlock, line);
    s->target = std::move(target);
    if (IsOp("|")) STRATA_RETURN_IF_ERROR(ParseFilter(nullptr, false, &s->expr));
    STRATA_RETURN_IF_ERROR(StatementsDrop({"endset"}, &s->body));
    *out = std::move(s);
    return Status::Ok();
  }

  Status ParseSignature(Signature* sig) {
    STRATA_RETURN_IF_ERROR(ExpectOp("("));
    while (!IsOp(")")) {
      if (!sig->params.empty()) STRATA_RETURN_IF_ERROR(ExpectOp(","));
      std::string name;
      STRATA_RETURN_IF_ERROR(ExpectName(&name));
      if (SkipOp("=")) {
        ExprPtr d;
        STRATA_RETURN_IF_ERROR(ParseExpression(true, &d));
        sig->defaults.push_back(std::move(d));
      } else if (!sig->defaults.empty()) {
        return Fail("non-default argument follows default argument");
      }
      sig->params.push_back(std::move(name));
    }
    return ExpectOp(")");
  }

  // A macro or call-block body: break/continue cannot leave it.
  Status FunctionBody(EndTokens end, Stmt* s) {
    const int saved = loop_depth_;
    loop_depth_ = 0;
    Status st = StatementsDrop(end, &s->body);
    loop_depth_ = saved;
    STRATA_RETURN_IF_ERROR(st);
    ScanNames(s->body, &s->signature);
    return Status::Ok();
  }

  Status ParseMacro(StmtPtr* out) {
    auto s = std::make_unique<Stmt>(Stmt::Kind::kMacro, cur().line);
    Next();
    STRATA_RETURN_IF_ERROR(ExpectName(&s->name));
    STRATA_RETURN_IF_ERROR(ParseSignature(&s->signature));
    STRATA_RETURN_IF_ERROR(FunctionBody({"endmacro"}, s.get()));
    *out = std::move(s);
    return Status::Ok();
  }

  Status ParseCallBlock(StmtPtr* out) {
    auto s = std::make_unique<Stmt>(Stmt::Kind::kCallBlock, cur().line);
    Next();
    if (IsOp("(")) STRATA_RETURN_IF_ERROR(ParseSignature(&s->signature));
    STRATA_RETURN_IF_ERROR(ParseExpression(true, &s->expr));
    if (s->expr->kind != Expr::Kind::kCall) return Fail("expected call");
    STRATA_RETURN_IF_ERROR(FunctionBody({"endcall"}, s.get()));
    *out = std::move(s);
    return Status::Ok();
  }

  Status ParseWith(StmtPtr* out) {
    auto s = std::make_unique<Stmt>(Stmt::Kind::kWith, cur().line);
    Next();
    while (cur().type != TokenType::kBlockEnd) {
      if (!s->targets.empty()) STRATA_RETURN_IF_ERROR(ExpectOp(","));
      ExprPtr target, value;
      STRATA_RETURN_IF_ERROR(ParseAssignTarget(false, {}, &target));
      STRATA_RETURN_IF_ERROR(ExpectOp("="));
      STRATA_RETURN_IF_ERROR(ParseExpression(true, &value));
      s->targets.push_back(std::move(target));
      s->exprs.push_back(std::move(value));
    }
    STRATA_RETURN_IF_ERROR(StatementsDrop({"endwith"}, &s->body));
    *out = std::move(s);
    return Status::Ok();
  }

  // A name, a tuple of names, or (with_namespace) name.attr, which is
  // returned as a kGetattr of a kName.
  Status ParseAssignTarget(bool with_namespace, EndTokens extra_end, ExprPtr* out) {
    if (with_namespace && cur().type == TokenType::kName && look().type == TokenType::kOperator &&
        look().value == ".") {
      auto e = NewExpr(Expr::Kind::kGetattr, cur().line);
      e->operand = NewExpr(Expr::Kind::kName, cur().line);
      e->operand->name = cur().value;
      Next();
      Next();
      STRATA_RETURN_IF_ERROR(ExpectName(&e->name));
      *out = std::move(e);
      return Status::Ok();
    }
    STRATA_RETURN_IF_ERROR(ParseTuple(true, true, extra_end, false, out));
    if (!CanAssign(**out)) return Fail("can't assign to this expression");
    return Status::Ok();
  }

  // ---- expressions
  Status ParseExpression(bool with_condexpr, ExprPtr* out) {
    DepthGuard guard(this);
    STRATA_RETURN_IF_ERROR(CheckDepth());
    return with_condexpr ? ParseCondExpr(out) : ParseOr(out);
  }

  Status ParseCondExpr(ExprPtr* out) {
    int line = cur().line;
    STRATA_RETURN_IF_ERROR(ParseOr(out));
    while (SkipName("if")) {
      auto e = NewExpr(Expr::Kind::kCondExpr, line);
      e->items.resize(3);
      e->items[1] = std::move(*out);
      STRATA_RETURN_IF_ERROR(ParseOr(&e->operand));
      if (SkipName("else")) STRATA_RETURN_IF_ERROR(ParseExpression(true, &e->items[2]));
      STRATA_RETURN_IF_ERROR(Seal(e.get()));
      *out = std::move(e);
      line = cur().line;
    }
    return Status::Ok();
  }

  Status ParseBinaryChain(Expr::Kind kind, std::string_view keyword, Status (Parser::*operand)(ExprPtr*),
                          ExprPtr* out) {
    int line = cur().line;
    STRATA_RETURN_IF_ERROR((this->*operand)(out));
    while (SkipName(keyword)) {
      auto e = NewExpr(kind, line);
      e->operand = std::move(*out);
      STRATA_RETURN_IF_ERROR((this->*operand)(&e->arg));
      STRATA_RETURN_IF_ERROR(Seal(e.get()));
      *out = std::move(e);
      line = cur().line;
    }
    return Status::Ok();
  }
  Status ParseOr(ExprPtr* out) { return ParseBinaryChain(Expr::Kind::kOr, "or", &Parser::ParseAnd, out); }
  Status ParseAnd(ExprPtr* out) { return ParseBinaryChain(Expr::Kind::kAnd, "and", &Parser::ParseNot, out); }

  Status ParseNot(ExprPtr* out) {
    if (IsName("not")) {
      DepthGuard guard(this);
      STRATA_RETURN_IF_ERROR(CheckDepth());
      auto e = NewExpr(Expr::Kind::kNot, cur().line);
      Next();
      STRATA_RETURN_IF_ERROR(ParseNot(&e->operand));
      STRATA_RETURN_IF_ERROR(Seal(e.get()));
      *out = std::move(e);
      return Status::Ok();
    }
    return ParseCompare(out);
  }

  Status ParseCompare(ExprPtr* out) {
    const int line = cur().line;
    ExprPtr first;
    STRATA_RETURN_IF_ERROR(ParseMath1(&first));
    ExprPtr cmp;
    auto add = [&](std::string op) -> Status {
      if (!cmp) {
        cmp = NewExpr(Expr::Kind::kCompare, line);
        cmp->operand = std::move(first);
      }
      ExprPtr rhs;
      STRATA_RETURN_IF_ERROR(ParseMath1(&rhs));
      cmp->ops.push_back(std::move(op));
      cmp->items.push_back(std::move(rhs));
      return Status::Ok();
    };
    while (true) {
      if (cur().type == TokenType::kOperator &&
          (cur().value == "==" || cur().value == "!=" || cur().value == "<" || cur().value == "<=" ||
           cur().value == ">" || cur().value == ">=")) {
        std::string op = cur().value;
        Next();
        STRATA_RETURN_IF_ERROR(add(std::move(op)));
      } else if (SkipName("in")) {
        STRATA_RETURN_IF_ERROR(add("in"));
      } else if (IsName("not") && look().type == TokenType::kName && look().value == "in") {
        Next();
        Next();
        STRATA_RETURN_IF_ERROR(add("notin"));
      } else {
        break;
      }
    }
    if (cmp) STRATA_RETURN_IF_ERROR(Seal(cmp.get()));
    *out = cmp ? std::move(cmp) : std::move(first);
    return Status::Ok();
  }

  Status ParseBinaryOps(EndTokens ops, Status (Parser::*operand)(ExprPtr*), ExprPtr* out) {
    int line = cur().line;
    STRATA_RETURN_IF_ERROR((this->*operand)(out));
    while (cur().type == TokenType::kOperator &&
           std::find(ops.begin(), ops.end(), std::string_view(cur().value)) != ops.end()) {
      auto e = NewExpr(Expr::Kind::kBinary, line);
      e->name = cur().value;
      Next();
      e->operand = std::move(*out);
      STRATA_RETURN_IF_ERROR((this->*operand)(&e->arg));
      STRATA_RETURN_IF_ERROR(Seal(e.get()));
      *out = std::move(e);
      line = cur().line;
    }
    return Status::Ok();
  }
  Status ParseMath1(ExprPtr* out) { return ParseBinaryOps({"+", "-"}, &Parser::ParseConcat, out); }
  Status ParseMath2(ExprPtr* out) { return ParseBinaryOps({"*", "/", "//", "%"}, &Parser::ParsePow, out); }
  Status ParsePow(ExprPtr* out) { return ParseBinaryOps({"**"}, &Parser::ParseUnaryWithFilter, out); }

  Status ParseConcat(ExprPtr* out) {
    const int line = cur().line;
    ExprPtr first;
    STRATA_RETURN_IF_ERROR(ParseMath2(&first));
    if (!IsOp("~")) {
      *out = std::move(first);
      return Status::Ok();
    }
    auto e = NewExpr(Expr::Kind::kConcat, line);
    e->items.push_back(std::move(first));
    while (SkipOp("~")) {
      ExprPtr next;
      STRATA_RETURN_IF_ERROR(ParseMath2(&next));
      e->items.push_back(std::move(next));
    }
    STRATA_RETURN_IF_ERROR(Seal(e.get()));
    *out = std::move(e);
    return Status::Ok();
  }

  Status ParseUnaryWithFilter(ExprPtr* out) { return ParseUnary(true, out); }

  Status ParseUnary(bool with_filter, ExprPtr* out) {
    DepthGuard guard(this);
    STRATA_RETURN_IF_ERROR(CheckDepth());
    if (IsOp("-") || IsOp("+")) {
      auto e = NewExpr(IsOp("-") ? Expr::Kind::kNeg : Expr::Kind::kPos, cur().line);
      Next();
      STRATA_RETURN_IF_ERROR(ParseUnary(false, &e->operand));
      STRATA_RETURN_IF_ERROR(Seal(e.get()));
      *out = std::move(e);
    } else {
      STRATA_RETURN_IF_ERROR(ParsePrimary(out));
    }
    STRATA_RETURN_IF_ERROR(ParsePostfix(out));
    if (with_filter) STRATA_RETURN_IF_ERROR(ParseFilterExpr(out));
    return Status::Ok();
  }

  Status ParsePrimary(ExprPtr* out) {
    const Token& tok = cur();
    switch (tok.type) {
      case TokenType::kName: {
        auto e = NewExpr(Expr::Kind::kConst, tok.line);
        if (tok.value == "true" || tok.value == "True" || tok.value == "false" || tok.value == "False") {
          e->value = Value::Bool(tok.value == "true" || tok.value == "True");
        } else if (tok.value == "none" || tok.value == "None") {
          e->value = Value::None();
        } else {
          e->kind = Expr::Kind::kName;
          e->name = tok.value;
        }
        Next();
        *out = std::move(e);
        return Status::Ok();
      }
      case TokenType::kString: {
        auto e = NewExpr(Expr::Kind::kConst, tok.line);
        std::string s;
        while (cur().type == TokenType::kString) {
          s += cur().value;
          Next();
        }
        e->value = Value::String(std::move(s));
        *out = std::move(e);
        return Status::Ok();
      }
      case TokenType::kInteger:
      case TokenType::kFloat: {
        auto e = NewExpr(Expr::Kind::kConst, tok.line);
        e->value = tok.type == TokenType::kInteger ? Value::Int(tok.integer) : Value::Float(tok.real);
        Next();
        *out = std::move(e);
        return Status::Ok();
      }
      case TokenType::kOperator:
        if (tok.value == "(") {
          Next();
          STRATA_RETURN_IF_ERROR(ParseTuple(false, true, {}, true, out));
          return ExpectOp(")");
        }
        if (tok.value == "[") return ParseList(out);
        if (tok.value == "{") return ParseDict(out);
        break;
      default: break;
    }
    if (tok.type == TokenType::kEof) return Fail("unexpected end of template");
    return Fail(fmt::format("unexpected '{}'", Describe(tok)));
  }

  bool IsTupleEnd(EndTokens extra_end) const {
    if (cur().type == TokenType::kVariableEnd || cur().type == TokenType::kBlockEnd || IsOp(")")) return true;
    for (std::string_view e : extra_end)
      if (IsName(e)) return true;
    return false;
  }

  // simplified: primaries only (assignment targets).
  Status ParseTuple(bool simplified, bool with_condexpr, EndTokens extra_end, bool explicit_parens, ExprPtr* out) {
    const int line = cur().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) STRATA_RETURN_IF_ERROR(ExpectOp(","));
      if (IsTupleEnd(extra_end)) break;
      ExprPtr item;
      if (simplified) {
        STRATA_RETURN_IF_ERROR(ParsePrimary(&item));
      } else {
        STRATA_RETURN_IF_ERROR(ParseExpression(with_condexpr, &item));
      }
      items.push_back(std::move(item));
      if (IsOp(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) {
        *out = std::move(items[0]);
        return Status::Ok();
      }
      if (!explicit_parens) return Fail(fmt::format("Expected an expression, got '{}'", Describe(cur())));
    }
    auto e = NewExpr(Expr::Kind::kTuple, line);
    e->items = std::move(items);
    STRATA_RETURN_IF_ERROR(Seal(e.get()));
    *out = std::move(e);
    return Status::Ok();
  }

  Status ParseList(ExprPtr* out) {
    auto e = NewExpr(Expr::Kind::kList, cur().line);
    STRATA_RETURN_IF_ERROR(ExpectOp("["));
    while (!IsOp("]")) {
      if (!e->items.empty()) STRATA_RETURN_IF_ERROR(ExpectOp(","));
      if (IsOp("]")) break;
      ExprPtr item;
      STRATA_RETURN_IF_ERROR(ParseExpression(true, &item));
      e->items.push_back(std::move(item));
    }
    STRATA_RETURN_IF_ERROR(ExpectOp("]"));
    STRATA_RETURN_IF_ERROR(Seal(e.get()));
    *out = std::move(e);
    return Status::Ok();
  }

  Status ParseDict(ExprPtr* out) {
    auto e = NewExpr(Expr::Kind::kDict, cur().line);
    STRATA_RETURN_IF_ERROR(ExpectOp("{"));
    while (!IsOp("}")) {
      if (!e->items.empty()) STRATA_RETURN_IF_ERROR(ExpectOp(","));
      if (IsOp("}")) break;
      ExprPtr key, value;
      STRATA_RETURN_IF_ERROR(ParseExpression(true, &key));
      STRATA_RETURN_IF_ERROR(ExpectOp(":"));
      STRATA_RETURN_IF_ERROR(ParseExpression(true, &value));
      e->items.push_back(std::move(key));
      e->items.push_back(std::move(value));
    }
    STRATA_RETURN_IF_ERROR(ExpectOp("}"));
    STRATA_RETURN_IF_ERROR(Seal(e.get()));
    *out = std::move(e);
    return Status::Ok();
  }

  Status ParsePostfix(ExprPtr* out) {
    while (true) {
      if (IsOp(".") || IsOp("[")) {
        STRATA_RETURN_IF_ERROR(ParseSubscript(out));
      } else if (IsOp("(")) {
        STRATA_RETURN_IF_ERROR(ParseCall(out));
      } else {
        return Status::Ok();
      }
    }
  }

  Status ParseFilterExpr(ExprPtr* out) {
    while (true) {
      if (IsOp("|")) {
        STRATA_RETURN_IF_ERROR(ParseFilter(std::move(*out), false, out));
      } else if (IsName("is")) {
        STRATA_RETURN_IF_ERROR(ParseTest(out));
      } else if (IsOp("(")) {
        STRATA_RETURN_IF_ERROR(ParseCall(out));
      } else {
        return Status::Ok();
      }
    }
  }

  Status ParseSubscript(ExprPtr* out) {
    const int line = cur().line;
    if (SkipOp(".")) {
      if (cur().type == TokenType::kName) {
        auto e = NewExpr(Expr::Kind::kGetattr, line);
        e->name = cur().value;
        e->operand = std::move(*out);
        Next();
        STRATA_RETURN_IF_ERROR(Seal(e.get()));
        *out = std::move(e);
        return Status::Ok();
      }
      if (cur().type != TokenType::kInteger) return Fail("expected name or number");
      auto e = NewExpr(Expr::Kind::kGetitem, line);
      e->operand = std::move(*out);
      e->arg = NewExpr(Expr::Kind::kConst, cur().line);
      e->arg->value = Value::Int(cur().integer);
      Next();
      STRATA_RETURN_IF_ERROR(Seal(e.get()));
      *out = std::move(e);
      return Status::Ok();
    }
    STRATA_RETURN_IF_ERROR(ExpectOp("["));
    std::vector<ExprPtr> args;
    while (!IsOp("]")) {
      if (!args.empty()) STRATA_RETURN_IF_ERROR(ExpectOp(","));
      ExprPtr a;
      STRATA_RETURN_IF_ERROR(ParseSubscribed(&a));
      args.push_back(std::move(a));
    }
    STRATA_RETURN_IF_ERROR(ExpectOp("]"));
    auto e = NewExpr(Expr::Kind::kGetitem, line);
    e->operand = std::move(*out);
    if (args.size() == 1) {
      e->arg = std::move(args[0]);
    } else {
      e->arg = NewExpr(Expr::Kind::kTuple, line);
      e->arg->items = std::move(args);
      STRATA_RETURN_IF_ERROR(Seal(e->arg.get()));
    }
    STRATA_RETURN_IF_ERROR(Seal(e.get()));
    *out = std::move(e);
    return Status::Ok();
  }

  Status ParseSubscribed(ExprPtr* out) {
    const int line = cur().line;
    auto slice = NewExpr(Expr::Kind::kSlice, line);
    slice->items.resize(3);
    if (!SkipOp(":")) {
      ExprPtr node;
      STRATA_RETURN_IF_ERROR(ParseExpression(true, &node));
      if (!SkipOp(":")) {
        *out = std::move(node);
        return Status::Ok();
      }
      slice->items[0] = std::move(node);
    }
    if (!IsOp(":") && !IsOp("]") && !IsOp(",")) STRATA_RETURN_IF_ERROR(ParseExpression(true, &slice->items[1]));
    if (SkipOp(":") && !IsOp("]") && !IsOp(",")) STRATA_RETURN_IF_ERROR(ParseExpression(true, &slice->items[2]));
    STRATA_RETURN_IF_ERROR(Seal(slice.get()));
    *out = std::move(slice);
    return Status::Ok();
  }

  Status ParseCallArgs(Expr* e) {
    const int line = cur().line;
    STRATA_RETURN_IF_ERROR(ExpectOp("("));
    bool require_comma = false;
    auto ensure = [&](bool ok) {
      return ok ? Status::Ok()
                : Status::InvalidArgument(fmt::format("line {}: invalid syntax for function call expression", line));
    };
    while (!IsOp(")")) {
      if (require_comma) {
        STRATA_RETURN_IF_ERROR(ExpectOp(","));
        if (IsOp(")")) break;
      }
      if (SkipOp("*")) {
        STRATA_RETURN_IF_ERROR(ensure(!e->dyn_args && !e->dyn_kwargs));
        STRATA_RETURN_IF_ERROR(ParseExpression(true, &e->dyn_args));
      } else if (SkipOp("**")) {
        STRATA_RETURN_IF_ERROR(ensure(!e->dyn_kwargs));
        STRATA_RETURN_IF_ERROR(ParseExpression(true, &e->dyn_kwargs));
      } else if (cur().type == TokenType::kName && look().type == TokenType::kOperator && look().value == "=") {
        STRATA_RETURN_IF_ERROR(ensure(!e->dyn_kwargs));
        std::string key = cur().value;
        Next();
        Next();
        ExprPtr value;
        STRATA_RETURN_IF_ERROR(ParseExpression(true, &value));
        e->kwargs.emplace_back(std::move(key), std::move(value));
      } else {
        STRATA_RETURN_IF_ERROR(ensure(!e->dyn_args && !e->dyn_kwargs && e->kwargs.empty()));
        ExprPtr value;
        STRATA_RETURN_IF_ERROR(ParseExpression(true, &value));
        e->args.push_back(std::move(value));
      }
      require_comma = true;
    }
    return ExpectOp(")");
  }

  Status ParseCall(ExprPtr* out) {
    auto e = NewExpr(Expr::Kind::kCall, cur().line);
    e->operand = std::move(*out);
    STRATA_RETURN_IF_ERROR(ParseCallArgs(e.get()));
    STRATA_RETURN_IF_ERROR(Seal(e.get()));
    *out = std::move(e);
    return Status::Ok();
  }

  // One or more "| name(args)"; with start_inline the first has no "|".
  Status ParseFilter(ExprPtr node, bool start_inline, ExprPtr* out) {
    while (IsOp("|") || start_inline) {
      if (!start_inline) Next();
      start_inline = false;
      auto e = NewExpr(Expr::Kind::kFilter, cur().line);
      STRATA_RETURN_IF_ERROR(ExpectName(&e->name));
      while (SkipOp(".")) {
        std::string part;
        STRATA_RETURN_IF_ERROR(ExpectName(&part));
        e->name += "." + part;
      }
      if (IsOp("(")) STRATA_RETURN_IF_ERROR(ParseCallArgs(e.get()));
      e->operand = std::move(node);
      STRATA_RETURN_IF_ERROR(Seal(e.get()));
      node = std::move(e);
    }
    *out = std::move(node);
    return Status::Ok();
  }

  Status ParseTest(ExprPtr* out) {
    const int line = cur().line;
    Next();  // is
    const bool negated = SkipName("not");
    auto e = NewExpr(Expr::Kind::kTest, line);
    STRATA_RETURN_IF_ERROR(ExpectName(&e->name));
    while (SkipOp(".")) {
      std::string part;
      STRATA_RETURN_IF_ERROR(ExpectName(&part));
      e->name += "." + part;
    }
    const TokenType t = cur().type;
    if (IsOp("(")) {
      STRATA_RETURN_IF_ERROR(ParseCallArgs(e.get()));
    } else if ((t == TokenType::kName || t == TokenType::kString || t == TokenType::kInteger ||
                t == TokenType::kFloat || IsOp("[") || IsOp("{")) &&
               !IsName("else") && !IsName("or") && !IsName("and")) {
      if (IsName("is")) return Fail("You cannot chain multiple tests with is");
      ExprPtr arg;
      STRATA_RETURN_IF_ERROR(ParsePrimary(&arg));
      STRATA_RETURN_IF_ERROR(ParsePostfix(&arg));
      e->args.push_back(std::move(arg));
    }
    e->operand = std::move(*out);
    STRATA_RETURN_IF_ERROR(Seal(e.get()));
    if (negated) {
      auto n = NewExpr(Expr::Kind::kNot, line);
      n->operand = std::move(e);
      STRATA_RETURN_IF_ERROR(Seal(n.get()));
      *out = std::move(n);
    } else {
      *out = std::move(e);
    }
    return Status::Ok();
  }

  std::vector<Token> t_;
  size_t pos_ = 0;
  const int max_depth_;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Status Parse(std::vector<Token> tokens, int max_depth, Body* out) {
  if (tokens.empty() || tokens.back().type != TokenType::kEof) return Status::Internal("token stream without end");
  return Parser(std::move(tokens), max_depth).Run(out);
}

}  // namespace strata::jinja

// The syntax tree of a template, as jinja2's parser builds it (jinja2.nodes):
// expressions (Expr) and statements (Stmt), each with its source line.
//
// Thread-safety: immutable after parsing.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "jinja/value.h"

namespace strata::jinja {

struct Expr {
  enum class Kind {
    kConst,      // value
    kName,       // name
    kList,       // items
    kTuple,      // items
    kDict,       // items: key, value, key, value, ...
    kGetattr,    // operand.name
    kGetitem,    // operand[arg]
    kSlice,      // [items[0]:items[1]:items[2]], absent parts null (only as kGetitem's arg)
    kCall,       // operand(args)
    kFilter,     // operand | name(args); operand null in a filter block
    kTest,       // operand is name(args)
    kNot,        // not operand
    kNeg,        // -operand
    kPos,        // +operand
    kBinary,     // operand op arg: + - * / // % **
    kAnd,        // operand and arg
    kOr,         // operand or arg
    kConcat,     // items joined with ~
    kCompare,    // operand (ops[i] items[i])...: == != < <= > >= in notin
    kCondExpr,   // items[1] if operand else items[2] (items[2] may be null)
  };
  Kind kind;
  int line = 0;
  int depth = 1;                                // levels of the tree below and including this node
  Value value;                                  // kConst
  std::string name;                             // kName, kGetattr, kFilter, kTest; kBinary: the operator
  std::unique_ptr<Expr> operand;
  std::unique_ptr<Expr> arg;
  std::vector<std::unique_ptr<Expr>> items;
  std::vector<std::string> ops;                 // kCompare
  // kCall / kFilter / kTest arguments.
  std::vector<std::unique_ptr<Expr>> args;
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> kwargs;
  std::unique_ptr<Expr> dyn_args, dyn_kwargs;  // *args, **kwargs

  Expr(Kind k, int l) : kind(k), line(l) {}
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

// A macro's (or call block's) parameters.
struct Signature {
  std::vector<std::string> params;
  std::vector<std::unique_ptr<Expr>> defaults;  // for the last defaults.size() params
  bool catch_varargs = false, catch_kwargs = false, uses_caller = false;  // names the body reads
};

struct Stmt {
  enum class Kind {
    kOutput,       // exprs (kConst string for template data)
    kIf,           // test, body, else_body (elif chains nest in else_body)
    kFor,          // target, iter, test (inline if, may be null), body, else_body, recursive
    kAssign,       // target = expr
    kAssignBlock,  // {% set target | filter %}body{% endset %}
    kMacro,        // name, signature, body
    kCallBlock,    // {% call(signature) expr %}body{% endcall %}
    kFilterBlock,  // {% filter expr %}body{% endfilter %} (expr: kFilter with null operand)
    kWith,         // targets[i] = exprs[i]; body
    kBreak,
    kContinue,
    kScope,        // body rendered as is ({% block %}, {% generation %})
  };
  Kind kind;
  int line = 0;
  std::vector<std::unique_ptr<Expr>> exprs;
  std::unique_ptr<Expr> test, target, iter, expr;
  std::vector<std::unique_ptr<Expr>> targets;
  Body body, else_body;
  bool recursive = false;
  std::string name;
  Signature signature;

  Stmt(Kind k, int l) : kind(k), line(l) {}
};

}  // namespace strata::jinja

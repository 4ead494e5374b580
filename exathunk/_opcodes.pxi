# Generated from exathunk/opcodes.py (tests check that they agree).
cdef enum:
    OP_LOCAL = 0
    OP_LOCAL_EVAL = 1
    OP_STORE = 2
    OP_INT = 3
    OP_DBL = 4
    OP_STR = 5
    OP_BOOL = 6
    OP_NIL = 7
    OP_FUN = 8
    OP_CAF = 9
    OP_MKTHUNK = 10
    OP_MKPAP = 11
    OP_ALLOC_THUNK = 12
    OP_ALLOC_PAP = 13
    OP_SETFIELD = 14
    OP_CALL = 15
    OP_TAILCALL = 16
    OP_APPLY = 17
    OP_TAILAPPLY = 18
    OP_HOST = 19
    OP_EVAL = 20
    OP_RET = 21
    OP_JUMP = 22
    OP_JUMPF = 23
    OP_POP = 24
    OP_CONS = 25
    OP_ADD = 26
    OP_SUB = 27
    OP_MUL = 28
    OP_DIV = 29
    OP_MOD = 30
    OP_NEG = 31
    OP_ABS = 32
    OP_EQ = 33
    OP_NEQ = 34
    OP_LT = 35
    OP_LE = 36
    OP_GT = 37
    OP_GE = 38
    OP_NOT = 39
    OP_XOR = 40
    OP_LEN = 41
    OP_CONCAT = 42
    OP_SHOW = 43
    OP_TODOUBLE = 44
    OP_TRUNCATE = 45
    OP_ERROR = 46
    OP_BOTTOM = 47
    OP_HEAD = 48
    OP_TAIL = 49
    OP_NULLP = 50
    OP_ADD_LI = 51
    OP_SUB_LI = 52
    OP_LT_LI = 53
    OP_LE_LI = 54
    OP_GT_LI = 55
    OP_GE_LI = 56
    OP_EQ_LI = 57
    OP_BR_LT_LI = 58
    OP_BR_LE_LI = 59
    OP_BR_GT_LI = 60
    OP_BR_GE_LI = 61
    OP_BR_EQ_LI = 62
    OP_RET_LOCAL = 63
    OP_BR_LT_LL = 64
    OP_BR_LE_LL = 65
    OP_BR_GT_LL = 66
    OP_BR_GE_LL = 67
    OP_MKCON = 68
    OP_BR_NCON = 69
    OP_FIELD = 70
    OP_SUBSTRING = 71
    OP_SPLIT = 72
    OP_JOIN = 73
    OP_CHARS = 74
    OP_INTP = 75
    OP_PARSEINT = 76

# The engine's view of the numbering, for the agreement test.
OPCODE_VALUES = {
    'LOCAL': OP_LOCAL,
    'LOCAL_EVAL': OP_LOCAL_EVAL,
    'STORE': OP_STORE,
    'INT': OP_INT,
    'DBL': OP_DBL,
    'STR': OP_STR,
    'BOOL': OP_BOOL,
    'NIL': OP_NIL,
    'FUN': OP_FUN,
    'CAF': OP_CAF,
    'MKTHUNK': OP_MKTHUNK,
    'MKPAP': OP_MKPAP,
    'ALLOC_THUNK': OP_ALLOC_THUNK,
    'ALLOC_PAP': OP_ALLOC_PAP,
    'SETFIELD': OP_SETFIELD,
    'CALL': OP_CALL,
    'TAILCALL': OP_TAILCALL,
    'APPLY': OP_APPLY,
    'TAILAPPLY': OP_TAILAPPLY,
    'HOST': OP_HOST,
    'EVAL': OP_EVAL,
    'RET': OP_RET,
    'JUMP': OP_JUMP,
    'JUMPF': OP_JUMPF,
    'POP': OP_POP,
    'CONS': OP_CONS,
    'ADD': OP_ADD,
    'SUB': OP_SUB,
    'MUL': OP_MUL,
    'DIV': OP_DIV,
    'MOD': OP_MOD,
    'NEG': OP_NEG,
    'ABS': OP_ABS,
    'EQ': OP_EQ,
    'NEQ': OP_NEQ,
    'LT': OP_LT,
    'LE': OP_LE,
    'GT': OP_GT,
    'GE': OP_GE,
    'NOT': OP_NOT,
    'XOR': OP_XOR,
    'LEN': OP_LEN,
    'CONCAT': OP_CONCAT,
    'SHOW': OP_SHOW,
    'TODOUBLE': OP_TODOUBLE,
    'TRUNCATE': OP_TRUNCATE,
    'ERROR': OP_ERROR,
    'BOTTOM': OP_BOTTOM,
    'HEAD': OP_HEAD,
    'TAIL': OP_TAIL,
    'NULLP': OP_NULLP,
    'ADD_LI': OP_ADD_LI,
    'SUB_LI': OP_SUB_LI,
    'LT_LI': OP_LT_LI,
    'LE_LI': OP_LE_LI,
    'GT_LI': OP_GT_LI,
    'GE_LI': OP_GE_LI,
    'EQ_LI': OP_EQ_LI,
    'BR_LT_LI': OP_BR_LT_LI,
    'BR_LE_LI': OP_BR_LE_LI,
    'BR_GT_LI': OP_BR_GT_LI,
    'BR_GE_LI': OP_BR_GE_LI,
    'BR_EQ_LI': OP_BR_EQ_LI,
    'RET_LOCAL': OP_RET_LOCAL,
    'BR_LT_LL': OP_BR_LT_LL,
    'BR_LE_LL': OP_BR_LE_LL,
    'BR_GT_LL': OP_BR_GT_LL,
    'BR_GE_LL': OP_BR_GE_LL,
    'MKCON': OP_MKCON,
    'BR_NCON': OP_BR_NCON,
    'FIELD': OP_FIELD,
    'SUBSTRING': OP_SUBSTRING,
    'SPLIT': OP_SPLIT,
    'JOIN': OP_JOIN,
    'CHARS': OP_CHARS,
    'INTP': OP_INTP,
    'PARSEINT': OP_PARSEINT,
}

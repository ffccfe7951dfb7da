import time, torch, sys, statistics, math
import torch.nn.functional as F
sys.path.insert(0,'.')
import model as M
from model import CharTransformer, ModelConfig
from tinychar.settings import TrainConfig
from tinychar.step import make_optimizer, train_step
x=torch.randint(0,65,(32,128)); y=torch.randint(0,65,(32,128))
orig=F.scaled_dot_product_attention
def fp32_sdpa(q,k,v,dropout_p=0.0,is_causal=False):
    return orig(q.float(),k.float(),v.float(),dropout_p=dropout_p,is_causal=is_causal).to(q.dtype)
mask = torch.full((128,128), float('-inf')).triu(1)
def explicit(q,k,v,dropout_p=0.0,is_causal=False):
    s = (q @ k.transpose(-2,-1)) * (1/math.sqrt(q.size(-1)))
    if is_causal: s = s + mask
    return torch.softmax(s.float(),-1).to(v.dtype) @ v
def mk(attn):
    torch.manual_seed(0); m=CharTransformer(ModelConfig(vocab_size=65)); o=make_optimizer(m,TrainConfig())
    ctx=torch.autocast('cpu',dtype=torch.bfloat16)
    def f():
        M.F.scaled_dot_product_attention=attn
        try: train_step(m,o,x,y,1.0,ctx)
        finally: M.F.scaled_dot_product_attention=orig
    return f
fns={'bf16 sdpa':mk(orig),'bf16 + fp32 sdpa':mk(fp32_sdpa),'bf16 explicit':mk(explicit)}
for f in fns.values(): f(); f(); f()
res={k:[] for k in fns}
for r in range(5):
    for k,f in fns.items():
        t=time.perf_counter(); f(); f(); res[k].append((time.perf_counter()-t)/2)
for k,v in res.items(): print(k, round(1000*statistics.median(v),1), 'ms', round(4096/statistics.median(v)), 'tok/s')

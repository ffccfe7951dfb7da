import time, torch, sys, statistics
sys.path.insert(0,'.')
from model import CharTransformer, ModelConfig
from tinychar.settings import TrainConfig
from tinychar.step import make_optimizer, train_step
from contextlib import nullcontext
x=torch.randint(0,65,(32,128)); y=torch.randint(0,65,(32,128))
def mk(ctx):
    torch.manual_seed(0); m=CharTransformer(ModelConfig(vocab_size=65)); o=make_optimizer(m,TrainConfig())
    return lambda: train_step(m,o,x,y,1.0, ctx)
fns={'fp32':mk(nullcontext()), 'bf16':mk(torch.autocast('cpu',dtype=torch.bfloat16))}
for f in fns.values(): f(); f(); f()
res={k:[] for k in fns}
for r in range(5):
    for k,f in fns.items():
        t=time.perf_counter(); f(); f(); res[k].append((time.perf_counter()-t)/2)
for k,v in res.items(): print(k, round(1000*statistics.median(v),1), 'ms', round(4096/statistics.median(v)), 'tok/s')
from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(3): fns['bf16']()
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))

import time, torch, sys, statistics, resource
sys.path.insert(0,'.')
from model import CharTransformer, ModelConfig
from tinychar.settings import TrainConfig
from tinychar.step import make_optimizer, train_step
x=torch.randint(0,65,(32,128)); y=torch.randint(0,65,(32,128))
torch.manual_seed(0); m=CharTransformer(ModelConfig(vocab_size=65)); o=make_optimizer(m,TrainConfig())
for _ in range(3): train_step(m,o,x,y,1.0)
ts=[]; fl=[]
for _ in range(10):
    f0=resource.getrusage(resource.RUSAGE_SELF).ru_minflt; r0=resource.getrusage(resource.RUSAGE_SELF)
    t=time.perf_counter(); train_step(m,o,x,y,1.0); ts.append(time.perf_counter()-t)
    r1=resource.getrusage(resource.RUSAGE_SELF)
    fl.append((r1.ru_minflt-r0.ru_minflt, r1.ru_stime-r0.ru_stime, r1.ru_utime-r0.ru_utime))
print('ms', round(1000*statistics.median(ts),1), 'faults/step', statistics.median([f[0] for f in fl]), 'sys s/step', statistics.median([f[1] for f in fl]), 'user', statistics.median([f[2] for f in fl]))
